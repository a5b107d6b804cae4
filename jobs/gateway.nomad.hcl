# gateway: WebRTC media (aiortc) - forwards each participant's media to the others without
# re-encoding video, taps each speaker's audio for speech recognition, plays translated speech.
# Host network: media goes over UDP straight to the node's announced public IP. Rooms are sticky
# to one instance (signaling keeps the choice in Redis), so an update replaces instances one at a
# time and their rooms reconnect; no canary (a canary would take rooms it cannot keep).

variable "gateway_count" {
  description = "Number of gateway instances (each serves whole rooms)."
  type        = number
  default     = 1
}

variable "gateway_port" {
  description = "Port of the control API that signaling calls; 0 lets Nomad pick one."
  type        = number
  default     = 8090
}

variable "gateway_announced_ip" {
  description = "The node's public IP written into ICE candidates (1:1 NAT); empty: the interface's."
  type        = string
  default     = ""
}

variable "gateway_ice_addresses" {
  description = "Addresses to gather ICE candidates on; empty: every interface. The dev cluster uses the loopback."
  type        = list(string)
  default     = []
}

variable "gateway_udp_ports" {
  description = "UDP range of the gateway's media, recorded in the job's meta: Ansible opens it to the public on the edge node and makes it the node's ephemeral port range (aiortc binds ephemeral ports); ansible/group_vars/all/main.yml jb_gateway_udp_port_min/max."
  type        = string
  default     = "40000-44999"
}

variable "gateway_require_api_token" {
  description = "The gateway refuses to start without its API token (gateway_token in Nomad Variable nomad/jobs)."
  type        = bool
  default     = true
}

variable "gateway_max_rooms" {
  description = "Rooms per instance; the next is refused with a reason."
  type        = number
  default     = 20
}

variable "gateway_cpu" {
  description = "CPU reserved per instance, MHz."
  type        = number
  default     = 1500
}

variable "gateway_memory" {
  description = "Memory reserved per instance, MB."
  type        = number
  default     = 2048
}

job "gateway" {
  meta {
    jb_service   = "gateway"
    jb_udp_ports = var.gateway_udp_ports
    # jbctl generates these in Nomad Variable nomad/jobs (shared by every job) when missing
    jb_shared_secrets = "redis_password,gateway_token"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  group "gateway" {
    count = var.gateway_count

    scaling {
      enabled = true
      min     = 1
      max     = 8
    }

    network {
      mode = "host"
      port "http" {
        static = var.gateway_port
      }
    }

    service {
      name     = "gateway"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "media", "jb-metrics"]

      # Shown in the Consul UI; jb-metrics (tags) and metrics_path: what Prometheus scrapes
      # (jobs/prometheus.nomad.hcl); dashboard: a Prometheus graph, relative to the ingress:
      # caption latency p95 by kind and pair.
      meta {
        version      = var.release
        role         = "edge"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=histogram_quantile%280.95%2C%20sum%20by%20%28le%2C%20kind%2C%20source%2C%20lang%29%20%28rate%28jb_caption_latency_seconds_bucket%5B5m%5D%29%29%29&g0.tab=0&g0.range_input=1h"
      }

      check {
        name     = "gateway ready"
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
        name     = "gateway alive"
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

    task "gateway" {
      driver       = var.driver
      kill_timeout = "20s"

      config {
        command = "${var.app_root}/bin/jb-gateway"
      }

      env {
        JB_GATEWAY_HOST              = "${NOMAD_IP_http}"
        JB_GATEWAY_PORT              = "${NOMAD_PORT_http}"
        JB_GATEWAY_VERSION           = var.release
        JB_GATEWAY_MAX_ROOMS         = var.gateway_max_rooms
        JB_GATEWAY_ANNOUNCED_IP      = var.gateway_announced_ip
        JB_GATEWAY_ICE_ADDRESSES     = jsonencode(var.gateway_ice_addresses)
        JB_GATEWAY_CONSUL_HTTP_ADDR  = var.consul_http_addr
        JB_GATEWAY_REQUIRE_API_TOKEN = var.gateway_require_api_token
      }

      # Redis's URL with its password, and the control API's token (both from Nomad Variable
      # nomad/jobs): secrets/, never the job's env block.
      template {
        destination = "secrets/gateway.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          {{ $pw := "" }}{{ with nomadVar "nomad/jobs" }}{{ $pw = .redis_password }}JB_GATEWAY_API_TOKEN={{ .gateway_token }}
          {{ end }}{{ with service "redis" }}{{ with index . 0 }}JB_GATEWAY_REDIS_URL=redis://:{{ $pw }}@{{ .Address }}:{{ .Port }}/0{{ end }}{{ else }}JB_GATEWAY_REDIS_URL=redis://redis-not-in-consul.invalid:6379/0{{ end }}
          EOT
      }

      resources {
        cpu    = var.gateway_cpu
        memory = var.gateway_memory
      }
    }
  }
}
