# alertmanager: Debian's Alertmanager (0.25) on the edge node. Prometheus finds it in Consul
# (service "alertmanager") and sends it the alerts of jobs/prometheus.nomad.hcl; it groups them
# and posts them to one webhook (alert_webhook_url). Not exposed through the ingress. One
# instance, no gossip cluster; its silences live in the allocation (lost when it moves).

variable "alertmanager_bin" {
  description = "Path of Debian's prometheus-alertmanager binary on the node."
  type        = string
  default     = "/usr/bin/prometheus-alertmanager"
}

variable "alertmanager_port" {
  description = "Port of Alertmanager's API and UI; 0 lets Nomad pick one (Prometheus reads it from Consul)."
  type        = number
  default     = 0
}

variable "alert_webhook_url" {
  description = "Where Alertmanager posts alerts (its webhook JSON); empty: alerts are only shown in Alertmanager's UI."
  type        = string
  default     = ""
}

variable "alert_group_wait" {
  description = "How long Alertmanager waits to group a new alert with others before the first notification."
  type        = string
  default     = "30s"
}

variable "alert_repeat_interval" {
  description = "How often a still-firing alert is sent again."
  type        = string
  default     = "4h"
}

variable "alertmanager_cpu" {
  description = "CPU reserved for Alertmanager, MHz."
  type        = number
  default     = 50
}

variable "alertmanager_memory" {
  description = "Memory reserved for Alertmanager, MB."
  type        = number
  default     = 64
}

locals {
  receiver = {
    name            = "webhook"
    webhook_configs = [for u in [var.alert_webhook_url] : { url = u, send_resolved = true } if u != ""]
  }
  config = {
    route = {
      receiver        = "webhook"
      group_by        = ["alertname", "job"]
      group_wait      = var.alert_group_wait
      group_interval  = "1m"
      repeat_interval = var.alert_repeat_interval
    }
    receivers = [local.receiver]
  }
}

job "alertmanager" {
  meta {
    jb_service = "alertmanager"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  group "alertmanager" {
    count = 1

    network {
      port "http" {
        static = var.alertmanager_port
      }
    }

    service {
      name     = "alertmanager"
      port     = "http"
      provider = "consul"
      tags     = ["jbcalling", "jb-metrics", "operator"]

      meta {
        version      = var.release
        role         = "edge"
        metrics_path = "/metrics"
      }

      check {
        name     = "alertmanager ready"
        type     = "http"
        path     = "/-/ready"
        interval = "5s"
        timeout  = "2s"
      }
    }

    task "alertmanager" {
      driver       = var.driver
      kill_timeout = "15s"

      # An empty --cluster.listen-address turns the gossip cluster (port 9094) off.
      config {
        command = var.alertmanager_bin
        args = [
          "--config.file=${NOMAD_TASK_DIR}/alertmanager.yml",
          "--storage.path=${NOMAD_ALLOC_DIR}/data",
          "--web.listen-address=${NOMAD_ADDR_http}",
          "--cluster.listen-address=",
          "--log.level=warn",
        ]
      }

      # The config as data; [[ ]] so that nothing in it is read as a template.
      template {
        destination     = "local/alertmanager.yml"
        change_mode     = "signal"
        change_signal   = "SIGHUP"
        left_delimiter  = "[["
        right_delimiter = "]]"
        data            = yamlencode(local.config)
      }

      resources {
        cpu    = var.alertmanager_cpu
        memory = var.alertmanager_memory
      }
    }
  }
}
