# stt: streaming speech recognition vi/en over WebSocket (sherpa-onnx, or Silero VAD + an offline
# recognizer). A stream is sticky to its instance; a deployment replaces instances one at a time
# (clients reconnect). Models from the "models" host volume.

variable "stt_count" {
  description = "Number of stt instances."
  type        = number
  default     = 1
}

variable "stt_max" {
  description = "Most replicas `jbctl scale` may set (the scaling block's max)."
  type        = number
  default     = 4
}

variable "stt_port" {
  description = "Port stt listens on; 0 lets Nomad pick one."
  type        = number
  default     = 8081
}

variable "stt_cpu" {
  description = "CPU reserved per replica, MHz."
  type        = number
  default     = 3000
}

variable "stt_memory" {
  description = "Memory reserved per replica, MB."
  type        = number
  default     = 1536
}

variable "stt_threads" {
  description = "Threads per recognizer."
  type        = number
  default     = 2
}

variable "stt_whisper_window_s" {
  description = "Whisper input window, seconds (vad-whisper backend; 30 is Whisper's own, shorter is faster)."
  type        = number
  default     = 10
}

variable "stt_partial_interval_ms" {
  description = "VAD backends: re-decode the open utterance for a partial this often, ms (0: no partials)."
  type        = number
  default     = 600
}

variable "stt_partial_first_ms" {
  description = "VAD backends: the first partial this long after speech was detected, ms."
  type        = number
  default     = 100
}

variable "stt_max_sessions" {
  description = "Open streams per instance at most; beyond, a stream is refused with close code 1013."
  type        = number
  default     = 16
}

variable "stt_languages" {
  description = "Language -> \"<backend>:<model folder>\" (backends: streaming, vad-sherpa, vad-whisper)."
  type        = map(string)
  default = {
    "en" = "streaming:sherpa-onnx-streaming-zipformer-en-2023-06-26"
    "vi" = "vad-sherpa:sherpa-onnx-zipformer-vi-30M-int8-2026-02-09"
  }
}

variable "stt_vad_model" {
  description = "Folder of the Silero VAD model in the models volume."
  type        = string
  default     = "silero-vad"
}

locals {
  models_dir = var.driver == "exec" ? "/models" : "${var.host_volume_root}/models"
}

job "stt" {
  meta {
    jb_service = "stt"
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

  group "stt" {
    count = var.stt_count

    scaling {
      enabled = true
      min     = 1
      max     = var.stt_max
    }

    network {
      port "http" {
        static = var.stt_port
      }
    }

    volume "models" {
      type      = "host"
      source    = "models"
      read_only = true
    }

    # A killed stt is started again at once (Nomad adds up to 25 % jitter): while it is away,
    # captions pause for every speaker of its streams (issue 9: back within 10 s).
    restart {
      delay = "1s"
    }

    service {
      name     = "stt"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "speech", "jb-metrics"]

      # Shown in the Consul UI; jb-metrics (tags) and metrics_path: what Prometheus scrapes
      # (jobs/prometheus.nomad.hcl); dashboard: a Prometheus graph, relative to the ingress:
      # open streams per instance.
      meta {
        version      = var.release
        role         = "ai"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=sum%20by%20%28instance%2C%20lang%29%20%28jb_stt_active_streams%29&g0.tab=0&g0.range_input=1h"
      }

      check {
        name     = "stt ready"
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
        name     = "stt alive"
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

    task "stt" {
      driver       = var.driver
      kill_timeout = "20s"

      dynamic "volume_mount" {
        for_each = var.driver == "exec" ? [1] : []
        content {
          volume      = "models"
          destination = "/models"
          read_only   = true
        }
      }

      config {
        command = "${var.app_root}/bin/jb-stt"
      }

      env {
        JB_STT_HOST                = "${NOMAD_IP_http}"
        JB_STT_PORT                = "${NOMAD_PORT_http}"
        JB_STT_VERSION             = var.release
        JB_STT_MODELS_DIR          = local.models_dir
        JB_STT_LANGUAGES           = jsonencode(var.stt_languages)
        JB_STT_VAD_MODEL           = var.stt_vad_model
        JB_STT_LANGID_MODEL        = var.langid_model
        JB_STT_THREADS             = var.stt_threads
        JB_STT_MAX_SESSIONS        = var.stt_max_sessions
        JB_STT_WHISPER_WINDOW_S    = var.stt_whisper_window_s
        JB_STT_PARTIAL_INTERVAL_MS = var.stt_partial_interval_ms
        JB_STT_PARTIAL_FIRST_MS    = var.stt_partial_first_ms
      }

      resources {
        cpu    = var.stt_cpu
        memory = var.stt_memory
      }
    }
  }
}
