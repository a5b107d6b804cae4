# prometheus: Debian's Prometheus (2.42) on the edge node, the operator's view of the cluster.
# Every target comes from Consul's catalog through target files that Nomad's templates render
# (nothing listed here): each service tagged "jb-metrics" (the
# Prometheus job label is the Consul service name, instance is address:port, the path is the
# service's meta metrics_path) or "jb-exporter" (the same, through the exporter task beside the
# service: redis's, the ingress's blackbox prober), the Nomad agents (job "nomad": /v1/metrics) and the Consul
# servers ("consul": /v1/agent/metrics). It finds Alertmanager in Consul too. The UI and
# API live under /prometheus/ (the ingress forwards that prefix, behind basic auth).
# The TSDB is on host volume "prometheus-data". One instance, no canary.

variable "prometheus_bin" {
  description = "Path of Debian's prometheus binary on the node."
  type        = string
  default     = "/usr/bin/prometheus"
}

variable "prometheus_port" {
  description = "Port of Prometheus's HTTP API and UI; 0 lets Nomad pick one (the ingress reads it from Consul)."
  type        = number
  default     = 0
}

variable "prometheus_retention" {
  description = "How long the TSDB keeps samples."
  type        = string
  default     = "15d"
}

variable "prometheus_scrape_interval" {
  description = "How often every target is scraped."
  type        = string
  default     = "15s"
}

variable "prometheus_scrape_timeout" {
  description = "How long a scrape may take (at most the scrape interval)."
  type        = string
  default     = "10s"
}

variable "prometheus_eval_interval" {
  description = "How often recording and alert rules are evaluated."
  type        = string
  default     = "15s"
}

variable "prometheus_sd_refresh" {
  description = "How often Prometheus reads its target files again (it also notices each change at once)."
  type        = string
  default     = "15s"
}

variable "alert_down_for" {
  description = "How long a jbcalling service must have no healthy instance (or a node no agent) before the alert fires."
  type        = string
  default     = "1m"
}

variable "alert_for" {
  description = "How long the other alerts' conditions must hold before they fire (latency, stt load, gateway CPU, Raft)."
  type        = string
  default     = "5m"
}

variable "alert_caption_p95_seconds" {
  description = "Caption p95 latency (final captions, after the end of speech) above which CaptionLatencyHigh fires."
  type        = number
  default     = 1.5
}

variable "hashi_metrics_scheme" {
  description = "Scheme of the Nomad and Consul agents' HTTP APIs that Prometheus scrapes (https in production)."
  type        = string
  default     = "http"
}

variable "consul_metrics_port" {
  description = "Port of the Consul servers' HTTP(S) API for /v1/agent/metrics; 0: the port of consul_http_addr."
  type        = number
  default     = 0
}

variable "hashi_tls" {
  description = "Scrape the agents with the cluster CA, a client certificate and a Consul token from Nomad Variable nomad/jobs/prometheus (hashi_ca, hashi_cert, hashi_key, consul_token: Ansible's jb_origin role writes them)."
  type        = bool
  default     = false
}

variable "public_url" {
  description = "The public origin (https://call.example); Prometheus's links (alerts' generatorURL) use <public_url>/prometheus/; empty: its own address."
  type        = string
  default     = ""
}

variable "prometheus_cpu" {
  description = "CPU reserved for Prometheus, MHz (the edge node's 4000 must still hold a signaling canary)."
  type        = number
  default     = 200
}

variable "prometheus_memory" {
  description = "Memory reserved for Prometheus, MB."
  type        = number
  default     = 512
}

locals {
  data_dir = var.driver == "exec" ? "/data" : "${var.host_volume_root}/prometheus-data"
  # where links point: the public origin, else Prometheus's own address (Nomad fills it in)
  external_base = var.public_url != "" ? trimsuffix(var.public_url, "/") : "http://$${NOMAD_ADDR_http}"
  # The Consul servers' HTTP(S) API port (their catalog entry has the RPC port).
  consul_port = var.consul_metrics_port != 0 ? "${var.consul_metrics_port}" : element(split(":", var.consul_http_addr), length(split(":", var.consul_http_addr)) - 1)
  # Relative paths in Prometheus's config are relative to the config file (local/).
  hashi_tls = { for k, v in {
    tls_config = { ca_file = "../secrets/hashi-ca.pem", cert_file = "../secrets/hashi.pem", key_file = "../secrets/hashi-key.pem" }
  } : k => v if var.hashi_tls }
  # Consul's /v1/agent/metrics wants agent read (ACL policy jb-prometheus) in production.
  consul_auth = { for k, v in {
    authorization = { type = "Bearer", credentials_file = "../secrets/consul.token" }
  } : k => v if var.hashi_tls }
  files  = { refresh_interval = var.prometheus_sd_refresh }
  config = {
    global = {
      scrape_interval     = var.prometheus_scrape_interval
      scrape_timeout      = var.prometheus_scrape_timeout
      evaluation_interval = var.prometheus_eval_interval
    }
    rule_files = ["rules.yml"]
    alerting = {
      alertmanagers = [{ file_sd_configs = [merge(local.files, { files = ["targets/alertmanager.yml"] })] }]
    }
    scrape_configs = [
      # Every service tagged jb-metrics: job = its Consul service name, instance = address:port.
      {
        job_name        = "jb-metrics"
        file_sd_configs = [merge(local.files, { files = ["targets/jb-metrics.yml"] })]
      },
      # Nomad agents, servers and clients (a node down is its target down).
      merge({
        job_name        = "nomad"
        metrics_path    = "/v1/metrics"
        params          = { format = ["prometheus"] }
        scheme          = var.hashi_metrics_scheme
        file_sd_configs = [merge(local.files, { files = ["targets/nomad.yml"] })]
      }, local.hashi_tls),
      merge({
        job_name        = "consul"
        metrics_path    = "/v1/agent/metrics"
        params          = { format = ["prometheus"] }
        scheme          = var.hashi_metrics_scheme
        file_sd_configs = [merge(local.files, { files = ["targets/consul.yml"] })]
      }, local.hashi_tls, local.consul_auth),
    ]
  }
  # The target files, rendered from Consul's catalog by Nomad's template (consul-template):
  # Debian builds Prometheus without consul_sd_configs (docs/decisions.md). "|any": instances
  # whose checks fail stay targets, so that a hung one shows as up == 0; a deregistered one goes.
  targets = {
    # "jb-exporter": a service without /metrics of its own (redis, the ingress) has an exporter
    # task beside it, at its meta metrics_port, and for a blackbox prober the probe's module and
    # target as URL parameters; its job label is still the service's name.
    "jb-metrics.yml" = <<-EOT
      [[- range services ]][[ if or (.Tags | contains "jb-metrics") (.Tags | contains "jb-exporter") ]][[ $name := .Name ]]
      [[- range service (print .Name "|any") ]]
      - targets: ["[[ .Address ]]:[[ or .ServiceMeta.metrics_port .Port ]]"]
        labels:
          job: "[[ $name ]]"
          __metrics_path__: "[[ or .ServiceMeta.metrics_path "/metrics" ]]"
          [[- with .ServiceMeta.probe_module ]]
          __param_module: "[[ . ]]"[[ end ]]
          [[- with .ServiceMeta.probe_target ]]
          __param_target: "[[ . ]]"[[ end ]]
      [[- end ]][[ end ]][[ end ]]
      EOT
    # Servers and clients are both "nomad": an agent that is both is scraped once.
    "nomad.yml" = <<-EOT
      [[- range $name := (split "," "nomad,nomad-client") ]][[ range service (print "http." $name "|any") ]]
      - targets: ["[[ .Address ]]:[[ .Port ]]"]
        labels:
          job: nomad
      [[- end ]][[ end ]]
      EOT
    "consul.yml" = <<-EOT
      [[- range service "consul|any" ]]
      - targets: ["[[ .Address ]]:${local.consul_port}"]
        labels:
          job: consul
      [[- end ]]
      EOT
    "alertmanager.yml" = <<-EOT
      [[- range service "alertmanager" ]]
      - targets: ["[[ .Address ]]:[[ .Port ]]"]
      [[- end ]]
      EOT
  }
}

job "prometheus" {
  meta {
    jb_service = "prometheus"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  group "prometheus" {
    count = 1

    network {
      port "http" {
        static = var.prometheus_port
      }
    }

    volume "data" {
      type      = "host"
      source    = "prometheus-data"
      read_only = false
    }

    service {
      name     = "prometheus"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "jb-metrics", "operator"]

      meta {
        version      = var.release
        role         = "edge"
        path_prefix  = "/prometheus/"
        metrics_path = "/prometheus/metrics"
      }

      check {
        name     = "prometheus ready"
        type     = "http"
        path     = "/prometheus/-/ready"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "prometheus" {
      driver       = var.driver
      kill_timeout = "30s"

      dynamic "volume_mount" {
        for_each = var.driver == "exec" ? [1] : []
        content {
          volume      = "data"
          destination = "/data"
        }
      }

      # --web.external-url's path is also the route prefix: the UI and API answer under
      # /prometheus/ both directly and through the ingress.
      config {
        command = var.prometheus_bin
        args = [
          "--config.file=${NOMAD_TASK_DIR}/prometheus.yml",
          "--storage.tsdb.path=${local.data_dir}",
          "--storage.tsdb.retention.time=${var.prometheus_retention}",
          "--web.listen-address=${NOMAD_ADDR_http}",
          "--web.external-url=${local.external_base}/prometheus/",
          "--web.route-prefix=/prometheus/",
          "--log.level=warn",
        ]
      }

      # The config as data (yamlencode); [[ ]] so that nothing in it is read as a template.
      template {
        destination     = "local/prometheus.yml"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = yamlencode(local.config)
      }

      # Targets from Consul's catalog; Prometheus notices a changed file by itself.
      dynamic "template" {
        for_each = local.targets
        content {
          destination     = "local/targets/${template.key}"
          change_mode     = "noop"
          left_delimiter  = "[["
          right_delimiter = "]]"
          data            = "# rendered from Consul's catalog\n${template.value}"
        }
      }

      # Prometheus's own templates use {{ }}: this file is rendered with [[ ]] instead.
      template {
        destination     = "local/rules.yml"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = <<-EOT
          groups:
            - name: jb-recording
              rules:
                # Caption latency after the end of speech, per kind and language pair.
                - record: jb:caption_latency_seconds:p50_5m
                  expr: histogram_quantile(0.5, sum by (kind, source, lang, le) (rate(jb_caption_latency_seconds_bucket[5m])))
                - record: jb:caption_latency_seconds:p95_5m
                  expr: histogram_quantile(0.95, sum by (kind, source, lang, le) (rate(jb_caption_latency_seconds_bucket[5m])))

            - name: jb-alerts
              rules:
                # A service that had a target within the hour and has none that answers now: its
                # instances hang (up == 0) or are gone from Consul (stopped, failing to start).
                # Where an exporter answers for the service (redis, the ingress), the exporter's
                # own word counts too: redis_up or probe_success 0 is an instance that does not.
                - alert: ServiceNoHealthyInstance
                  expr: |
                    count by (job) (max_over_time(up{job!~"nomad|consul"}[1h]))
                      unless count by (job) (
                        up{job!~"nomad|consul"} == 1
                          unless on (job, instance) (redis_up == 0 or probe_success == 0)
                      )
                  for: ${var.alert_down_for}
                  labels:
                    severity: critical
                  annotations:
                    summary: "{{ $labels.job }} has no healthy instance"
                    description: "No instance of {{ $labels.job }} answers Prometheus (redis and the ingress: the exporter beside it finds the service down), or none is registered in Consul. Look at `jbctl status` and `jbctl logs {{ $labels.job }} --stderr`; a stopped job comes back with `jbctl deploy {{ $labels.job }}`. See docs/operations.md, Alerts."

                - alert: CaptionLatencyHigh
                  expr: jb:caption_latency_seconds:p95_5m{kind="final"} > ${var.alert_caption_p95_seconds}
                  for: ${var.alert_for}
                  labels:
                    severity: warning
                  annotations:
                    summary: "final captions {{ $labels.source }}->{{ $labels.lang }} p95 {{ $value | humanizeDuration }}"
                    description: "The 95th percentile of final caption latency after the end of speech is over ${var.alert_caption_p95_seconds} s."

                - alert: SttNearCapacity
                  expr: |
                    sum by (job, instance) (jb_stt_active_streams)
                      >= 0.9 * max by (job, instance) (jb_stt_capacity_streams)
                  for: ${var.alert_for}
                  labels:
                    severity: warning
                  annotations:
                    summary: "stt {{ $labels.instance }} serves {{ $value }} streams, 90 % of its capacity"
                    description: "New speakers will soon get captions_status busy: scale stt (jbctl scale stt N) or add an ai node."

                # Nomad's allocation metrics: CPU used against the task's reservation (MHz both).
                - alert: GatewayCpuNearReservation
                  expr: |
                    max by (exported_job, task, alloc_id) (nomad_client_allocs_cpu_total_ticks{task="gateway"})
                      / max by (exported_job, task, alloc_id) (nomad_client_allocs_cpu_allocated{task="gateway"}) > 0.9
                  for: ${var.alert_for}
                  labels:
                    severity: warning
                  annotations:
                    summary: "gateway uses {{ $value | humanizePercentage }} of its CPU reservation"
                    description: "Media forwarding will start to lag: raise gateway_cpu or move rooms to another gateway."

                - alert: NodeDown
                  expr: up{job="nomad"} == 0
                  for: ${var.alert_down_for}
                  labels:
                    severity: critical
                  annotations:
                    summary: "node {{ $labels.instance }} does not answer"
                    description: "The Nomad agent of a node does not answer: the node or its agent is down."

                - alert: RaftNoLeader
                  expr: max(consul_server_isLeader) < 1 or absent(consul_server_isLeader)
                  for: ${var.alert_for}
                  labels:
                    severity: critical
                  annotations:
                    summary: "the Consul servers have no Raft leader"
                    description: "No Consul server reports itself leader: service discovery and Nomad's scheduling stop."
          EOT
      }

      # The cluster CA, a client certificate and the Consul token for the agents' APIs (production).
      dynamic "template" {
        for_each = var.hashi_tls ? { "hashi-ca.pem" = "hashi_ca", "hashi.pem" = "hashi_cert", "hashi-key.pem" = "hashi_key", "consul.token" = "consul_token" } : {}
        content {
          destination   = "secrets/${template.key}"
          perms         = "0600"
          uid           = var.task_uid
          gid           = var.task_gid
          change_mode   = "signal"
          change_signal = "SIGHUP"
          data          = "{{ with nomadVar \"nomad/jobs/prometheus\" }}{{ .${template.value} }}{{ end }}\n"
        }
      }

      resources {
        cpu    = var.prometheus_cpu
        memory = var.prometheus_memory
      }
    }
  }
}
