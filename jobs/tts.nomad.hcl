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
      tags     = ["jbcalling", "speech"]

      meta {
        version = var.release
        role    = "tts"
      }

      check {
        name     = "tts ready"
        type     = "http"
        path     = "/ready"
        interval = "3s"
        timeout  = "2s"
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
