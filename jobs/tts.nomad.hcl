# tts: text -> speech per language (Piper voices), streamed sentence by sentence as PCM or WAV.
# Stateless: N replicas, canary deployments. Voices from the "models" host volume.

variable "tts_count" {
  description = "Number of tts replicas."
  type        = number
  default     = 1
}

variable "tts_max" {
  description = "Most replicas `jbctl scale` may set (the scaling block's max)."
  type        = number
  default     = 4
}

variable "tts_port" {
  description = "Port tts listens on; 0 lets Nomad pick one."
  type        = number
  default     = 8083
}

variable "tts_cpu" {
  description = "CPU reserved per replica, MHz."
  type        = number
  default     = 1000
}

variable "tts_memory" {
  description = "Memory reserved per replica, MB."
  type        = number
  default     = 512
}

variable "tts_workers" {
  description = "Sentences synthesized at once; about one per reserved core."
  type        = number
  default     = 1
}

variable "tts_voices" {
  description = "Language -> Piper voice folder in the models volume."
  type        = map(string)
  default     = { "en" = "en_US-joe-medium", "vi" = "vi_VN-vais1000-medium" }
}

locals {
  models_dir = var.driver == "exec" ? "/models" : "${var.host_volume_root}/models"
}

job "tts" {
  meta {
    jb_service = "tts"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "tts"
  }

  # A canary first, promoted when healthy (the rest of update: jobs/policies.hcl).
  update {
    canary       = 1
    auto_promote = true
  }

  group "tts" {
    count = var.tts_count

    scaling {
      enabled = true
      min     = 1
      max     = var.tts_max
    }

    network {
      port "http" {
        static = var.tts_port
      }
    }

    volume "models" {
      type      = "host"
      source    = "models"
      read_only = true
    }

    service {
      name     = "tts"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "speech", "jb-metrics"]

      # Shown in the Consul UI; jb-metrics (tags) and metrics_path: what Prometheus scrapes
      # (jobs/prometheus.nomad.hcl); dashboard: a Prometheus graph, relative to the ingress:
      # time to first audio p95 per voice.
      meta {
        version      = var.release
        role         = "tts"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=histogram_quantile%280.95%2C%20sum%20by%20%28le%2C%20lang%29%20%28rate%28jb_tts_first_audio_seconds_bucket%5B5m%5D%29%29%29&g0.tab=0&g0.range_input=1h"
      }

      check {
        name     = "tts ready"
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
        name     = "tts alive"
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

    task "tts" {
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
        command = "${var.app_root}/bin/jb-tts"
      }

      env {
        JB_TTS_HOST       = "${NOMAD_IP_http}"
        JB_TTS_PORT       = "${NOMAD_PORT_http}"
        JB_TTS_VERSION    = var.release
        JB_TTS_MODELS_DIR = local.models_dir
        JB_TTS_VOICES     = jsonencode(var.tts_voices)
        JB_TTS_WORKERS    = var.tts_workers
      }

      resources {
        cpu    = var.tts_cpu
        memory = var.tts_memory
      }
    }
  }
}
