# mt: vi <-> en translation (CTranslate2 int8 + SentencePiece), micro-batched, cached in Redis.
# Stateless: N replicas, canary deployments. Models from the "models" host volume.

variable "mt_count" {
  description = "Number of mt replicas."
  type        = number
  default     = 1
}

variable "mt_max" {
  description = "Most replicas `jbctl scale` may set (the scaling block's max)."
  type        = number
  default     = 4
}

variable "mt_port" {
  description = "Port mt listens on; 0 lets Nomad pick one."
  type        = number
  default     = 8082
}

variable "mt_cpu" {
  description = "CPU reserved per replica, MHz."
  type        = number
  default     = 2000
}

variable "mt_memory" {
  description = "Memory reserved per replica, MB."
  type        = number
  default     = 1536
}

variable "mt_translators" {
  description = "Translator workers per direction (one thread each); about one per reserved core."
  type        = number
  default     = 2
}

variable "mt_pairs" {
  description = "Translation direction -> model folder in the models volume."
  type        = map(string)
  default     = { "en-vi" = "opus-mt-en-vi", "vi-en" = "opus-mt-vi-en" }
}

variable "redis_url" {
  description = "Redis URL of the translation cache; empty: the healthy redis instance registered in Consul."
  type        = string
  default     = ""
}

locals {
  models_dir = var.driver == "exec" ? "/models" : "${var.host_volume_root}/models"
}

job "mt" {
  meta {
    jb_service = "mt"
    # jbctl generates these in Nomad Variable nomad/jobs (shared by every job) when missing
    jb_shared_secrets = "redis_password"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "ai"
  }

  # A canary first, promoted when healthy (the rest of update: jobs/policies.hcl).
  update {
    canary       = 1
    auto_promote = true
  }

  group "mt" {
    count = var.mt_count

    scaling {
      enabled = true
      min     = 1
      max     = var.mt_max
    }

    network {
      port "http" {
        static = var.mt_port
      }
    }

    volume "models" {
      type      = "host"
      source    = "models"
      read_only = true
    }

    service {
      name     = "mt"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "speech", "jb-metrics"]

      # Shown in the Consul UI; jb-metrics (tags) and metrics_path: what Prometheus scrapes
      # (jobs/prometheus.nomad.hcl); dashboard: a Prometheus graph, relative to the ingress:
      # translate latency p95 per direction.
      meta {
        version      = var.release
        role         = "ai"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=histogram_quantile%280.95%2C%20sum%20by%20%28le%2C%20pair%29%20%28rate%28jb_mt_request_seconds_bucket%5B5m%5D%29%29%29&g0.tab=0&g0.range_input=1h"
      }

      check {
        name     = "mt ready"
        type     = "http"
        path     = "/ready"
        interval = "3s"
        timeout  = "2s"
      }

      # Liveness, the check Nomad restarts on: /health answers whenever the process serves HTTP,
      # whatever Redis or the load, so failing it 3 times in a row, 3 s apart (6 to 11 s without
      # an answer) means a hung process. /ready above carries no check_restart: it fails for
      # reasons a restart cannot fix (a missing model, Redis down) and a restart would only cut
      # every stream. grace = healthy_deadline (2m in prod, 60s in dev): the models load before
      # the HTTP server starts, up to a minute or two on a busy node, and a task still loading
      # after healthy_deadline has failed its deployment anyway; before that it is never
      # restarted for not answering.
      check {
        name     = "mt alive"
        type     = "http"
        path     = "/health"
        interval = "3s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = var.healthy_deadline
        }
      }
    }

    task "mt" {
      driver       = var.driver
      kill_timeout = "10s"

      dynamic "volume_mount" {
        for_each = var.driver == "exec" ? [1] : []
        content {
          volume      = "models"
          destination = "/models"
          read_only   = true
        }
      }

      config {
        command = "${var.app_root}/bin/jb-mt"
      }

      env {
        JB_MT_HOST        = "${NOMAD_IP_http}"
        JB_MT_PORT        = "${NOMAD_PORT_http}"
        JB_MT_VERSION     = var.release
        JB_MT_MODELS_DIR  = local.models_dir
        JB_MT_PAIRS       = jsonencode(var.mt_pairs)
        JB_MT_TRANSLATORS = var.mt_translators
      }

      # Redis's address, from Consul's healthy instances unless redis_url pins one; the task
      # restarts when it changes; the password from Nomad Variable nomad/jobs. Without Redis, mt translates uncached (and /ready says so).
      template {
        destination = "secrets/redis.env"
        env         = true
        change_mode = "restart"
        data        = <<-EOT
          %{if var.redis_url != ""}JB_MT_REDIS_URL=${var.redis_url}
          %{else}{{ $pw := "" }}{{ with nomadVar "nomad/jobs" }}{{ $pw = .redis_password }}{{ end }}{{ with service "redis" }}{{ with index . 0 }}JB_MT_REDIS_URL=redis://:{{ $pw }}@{{ .Address }}:{{ .Port }}/1{{ end }}{{ else }}JB_MT_REDIS_URL={{ end }}
          %{endif}
          EOT
      }

      resources {
        cpu    = var.mt_cpu
        memory = var.mt_memory
      }
    }
  }
}
