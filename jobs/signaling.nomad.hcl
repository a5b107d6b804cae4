# signaling: the public origin - rooms API, WebSocket signaling, caption fan-out, web client.
# Stateless (state is in Redis): N replicas, canary deployments.

variable "signaling_count" {
  description = "Number of signaling replicas."
  type        = number
  default     = 1
}

variable "signaling_max" {
  description = "Most replicas `jbctl scale` may set (the scaling block's max)."
  type        = number
  default     = 4
}

variable "signaling_port" {
  description = "Port signaling listens on; 0 lets Nomad pick one."
  type        = number
  default     = 8080
}

variable "signaling_cpu" {
  description = "CPU reserved per replica, MHz."
  type        = number
  default     = 500
}

variable "signaling_memory" {
  description = "Memory reserved per replica, MB."
  type        = number
  default     = 256
}

variable "public_url" {
  description = "The public origin (https://call.example); empty: the origin each request came to."
  type        = string
  default     = ""
}

variable "stun_urls" {
  description = "STUN URLs handed to browsers (JSON list)."
  type        = list(string)
  default     = []
}

variable "turn_urls" {
  description = "TURN URLs handed to browsers with time-limited credentials (JSON list)."
  type        = list(string)
  default     = []
}

variable "redis_url" {
  description = "Redis URL; empty: the healthy redis instance registered in Consul."
  type        = string
  default     = ""
}

variable "signaling_trusted_proxies" {
  description = "Addresses (or CIDRs) of the proxies signaling trusts for the client's address; empty: 127.0.0.1 and every Consul node."
  type        = list(string)
  default     = []
}

job "signaling" {
  meta {
    jb_service = "signaling"
    # jbctl generates these in Nomad Variable nomad/jobs/signaling when missing
    jb_secrets        = "jwt_secret"
    jb_shared_secrets = "redis_password,gateway_token"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  # A canary first, promoted when healthy (the rest of update: jobs/policies.hcl).
  update {
    canary       = 1
    auto_promote = true
  }

  group "signaling" {
    count = var.signaling_count

    scaling {
      enabled = true
      min     = 1
      max     = var.signaling_max
    }

    network {
      port "http" {
        static = var.signaling_port
      }
    }

    service {
      name     = "signaling"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "public", "jb-metrics"]

      # Shown in the Consul UI; jb-metrics (tags) and metrics_path: what Prometheus scrapes
      # (jobs/prometheus.nomad.hcl); dashboard: a Prometheus graph, relative to the ingress:
      # sockets per instance.
      meta {
        version      = var.release
        role         = "edge"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=sum%20by%20%28instance%29%20%28jb_signaling_sockets%29&g0.tab=0&g0.range_input=1h"
      }

      check {
        name     = "signaling ready"
        type     = "http"
        path     = "/ready"
        interval = "3s"
        timeout  = "2s"
      }

      # Liveness, the check Nomad restarts on: /health answers whenever the process serves HTTP,
      # whatever Redis or the load, so failing it 3 times in a row, 3 s apart (6 to 11 s without
      # an answer) means a hung process. /ready above carries no check_restart: it fails when
      # Redis is down, and restarting then would only cut every participant's connection.
      # grace 30s: no model to load; imports take a few seconds, more on a loaded node.
      check {
        name     = "signaling alive"
        type     = "http"
        path     = "/health"
        interval = "3s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "30s"
        }
      }
    }

    task "signaling" {
      driver       = var.driver
      kill_timeout = "10s"

      config {
        command = "${var.app_root}/bin/jb-signaling"
      }

      env {
        JB_SIGNALING_HOST             = "${NOMAD_IP_http}"
        JB_SIGNALING_PORT             = "${NOMAD_PORT_http}"
        JB_SIGNALING_VERSION          = var.release
        JB_SIGNALING_PUBLIC_URL       = var.public_url
        JB_SIGNALING_STUN_URLS        = jsonencode(var.stun_urls)
        JB_SIGNALING_TURN_URLS        = jsonencode(var.turn_urls)
        JB_SIGNALING_CONSUL_HTTP_ADDR = var.consul_http_addr
        JB_SIGNALING_SPEAK_AUTO       = var.langid_model != "" ? "true" : "false"
      }

      # Redis's address (Consul's healthy instance unless redis_url pins one) with its password
      # (Nomad Variable nomad/jobs); the task restarts when either changes.
      template {
        destination = "secrets/redis.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          %{if var.redis_url != ""}JB_SIGNALING_REDIS_URL=${var.redis_url}
          %{else}{{ $pw := "" }}{{ with nomadVar "nomad/jobs" }}{{ $pw = .redis_password }}{{ end }}{{ with service "redis" }}{{ with index . 0 }}JB_SIGNALING_REDIS_URL=redis://:{{ $pw }}@{{ .Address }}:{{ .Port }}/0{{ end }}{{ else }}JB_SIGNALING_REDIS_URL=redis://redis-not-in-consul.invalid:6379/0{{ end }}
          %{endif}
          EOT
      }

      # Secrets from Nomad Variables, each named: jwt_secret (generated by jbctl) and turn_secret
      # (written by Ansible) from nomad/jobs/signaling, the gateway's API token from nomad/jobs.
      # Nothing else of those paths reaches the environment.
      template {
        destination = "secrets/signaling.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs/signaling" }}{{ range .Tuples }}{{ if or (eq .K "jwt_secret") (eq .K "turn_secret") }}JB_SIGNALING_{{ .K | toUpper }}={{ .V }}
          {{ end }}{{ end }}{{ end }}{{ with nomadVar "nomad/jobs" }}JB_SIGNALING_GATEWAY_TOKEN={{ .gateway_token }}{{ end }}
          EOT
      }

      # The proxies whose X-Forwarded-For signaling believes: the ingress runs on the cluster's
      # nodes, and signaling's dynamic port is open to those nodes only (Ansible's firewall).
      # Single quotes: Nomad's env-file parser keeps the JSON list as it is.
      # noop, not restart: when a server node fails, Consul's autopilot reaps it from the
      # catalog, and it comes back when the node does; restarting every replica then would close
      # every participant's socket (seen in tests/integration/test_production.py). A changed list
      # takes effect at the replica's next start.
      template {
        destination = "local/proxies.env"
        env         = true
        change_mode = "noop"
        data        = <<-EOT
          %{if length(var.signaling_trusted_proxies) > 0}JB_SIGNALING_FORWARDED_ALLOW_IPS='${jsonencode(var.signaling_trusted_proxies)}'
          %{else}JB_SIGNALING_FORWARDED_ALLOW_IPS='["127.0.0.1"{{ range nodes }},"{{ .Address }}"{{ end }}]'
          %{endif}
          EOT
      }

      resources {
        cpu    = var.signaling_cpu
        memory = var.signaling_memory
      }
    }
  }
}
