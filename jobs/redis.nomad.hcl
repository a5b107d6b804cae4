# redis: room state, caption fan-out, transcripts and the MT cache (docs/architecture.md).
# One instance, AOF persistence on the "redis-data" host volume. Stateful: no canary.
# Beside it, Debian's prometheus-redis-exporter answers Prometheus for it (tag jb-exporter, meta
# metrics_port): redis_up, memory, clients, evictions (docs/operations.md).
# Password-protected: redis_password in Nomad Variable nomad/jobs, which jbctl generates once and
# every Redis client's job reads (its URL is rendered into the client's secrets/).

variable "redis_server" {
  description = "Path of Debian's redis-server binary on the node."
  type        = string
  default     = "/usr/bin/redis-server"
}

variable "redis_port" {
  description = "TCP port of Redis; 0 lets Nomad pick one (Consul tells the others)."
  type        = number
  default     = 6379
}

variable "redis_cpu" {
  description = "CPU reserved for Redis, MHz."
  type        = number
  default     = 500
}

variable "redis_memory" {
  description = "Memory reserved for Redis, MB; Redis's maxmemory is set 10 % below it."
  type        = number
  default     = 1024
}

variable "redis_exporter_bin" {
  description = "Path of Debian's prometheus-redis-exporter binary on the node (the exporter task beside Redis)."
  type        = string
  default     = "/usr/bin/prometheus-redis-exporter"
}

variable "redis_exporter_cpu" {
  description = "CPU reserved for the exporter, MHz (the edge node's 4000 must still hold a signaling canary)."
  type        = number
  default     = 20
}

variable "redis_exporter_memory" {
  description = "Memory reserved for the exporter, MB."
  type        = number
  default     = 32
}

locals {
  data_dir = var.driver == "exec" ? "/data" : "${var.host_volume_root}/redis-data"
}

job "redis" {
  meta {
    jb_service = "redis"
    # jbctl generates these in Nomad Variable nomad/jobs (shared by every job) when missing
    jb_shared_secrets = "redis_password"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  group "redis" {
    count = 1

    network {
      port "redis" {
        static = var.redis_port
      }
      port "metrics" {}
    }

    volume "data" {
      type      = "host"
      source    = "redis-data"
      read_only = false
    }

    service {
      name     = "redis"
      port     = "redis"
      provider = "consul"
      # jb-exporter: Prometheus scrapes the exporter task at metrics_port (job label "redis"),
      # not Redis's own port (jobs/prometheus.nomad.hcl).
      tags = ["jbcalling", "redis", "jb-exporter"]

      meta {
        version      = var.release
        role         = "edge"
        metrics_port = "${NOMAD_PORT_metrics}"
        metrics_path = "/metrics"
        dashboard    = "/prometheus/graph?g0.expr=redis_memory_used_bytes%20%2F%20redis_memory_max_bytes&g0.tab=0&g0.range_input=1h"
      }

      # A TCP connect sees only a closed port, not a hung server (the kernel still accepts),
      # which signaling's and the gateway's /ready show as "redis unreachable". Restarted after 3
      # failures 5 s apart (10 to 17 s); grace 15s: Redis listens within a second, after
      # replaying its append-only file, which is small here (captions, rooms).
      check {
        name     = "redis tcp"
        type     = "tcp"
        interval = "5s"
        timeout  = "2s"

        check_restart {
          limit = 3
          grace = "15s"
        }
      }
    }

    task "redis" {
      driver       = var.driver
      kill_timeout = "15s"

      dynamic "volume_mount" {
        for_each = var.driver == "exec" ? [1] : []
        content {
          volume      = "data"
          destination = "/data"
        }
      }

      config {
        command = var.redis_server
        args    = ["${NOMAD_SECRETS_DIR}/redis.conf"]
      }

      # The config holds the password: secrets/, mode 0600, owned by the task's user (nobody
      # under exec), never an environment variable.
      template {
        destination = "secrets/redis.conf"
        perms       = "0600"
        uid         = var.task_uid
        gid         = var.task_gid
        change_mode = "restart"
        data        = <<-EOT
          bind {{ env "NOMAD_IP_redis" }}
          port {{ env "NOMAD_PORT_redis" }}
          protected-mode yes
          {{ with nomadVar "nomad/jobs" }}requirepass {{ .redis_password }}{{ end }}
          daemonize no
          dir ${local.data_dir}
          appendonly yes
          appendfsync everysec
          save ""
          maxmemory ${floor(var.redis_memory * 0.9)}mb
          maxmemory-policy volatile-lru
          EOT
      }

      resources {
        cpu    = var.redis_cpu
        memory = var.redis_memory
      }
    }

    # Debian's Redis exporter: on each scrape it connects, authenticates and runs INFO, and says
    # redis_up 0 when that fails within 2 s (below any scrape timeout), while itself answering:
    # a hung Redis, which its TCP check cannot see, is an alert (jobs/prometheus.nomad.hcl).
    # -redis-only-metrics: no figures of the exporter's own process under job "redis".
    task "exporter" {
      driver = var.driver

      config {
        command = var.redis_exporter_bin
        args = [
          "-web.listen-address=${NOMAD_ADDR_metrics}",
          "-web.telemetry-path=/metrics",
          "-redis.addr=redis://${NOMAD_ADDR_redis}",
          "-redis.password-file=${NOMAD_SECRETS_DIR}/redis-password.json",
          "-connection-timeout=2s",
          "-redis-only-metrics",
          "-log-format=json",
        ]
      }

      # The password in a file (secrets/, 0600, the task's user), as a map from Redis's URL to
      # it: the exporter sends it to that address only. (As REDIS_PASSWORD it would also send it
      # to any address its /scrape?target= endpoint is asked to scrape.)
      template {
        destination = "secrets/redis-password.json"
        perms       = "0600"
        uid         = var.task_uid
        gid         = var.task_gid
        change_mode = "restart"
        data        = <<-EOT
          {{ with nomadVar "nomad/jobs" }}{ "redis://{{ env "NOMAD_ADDR_redis" }}": {{ .redis_password | toJSON }} }{{ end }}
          EOT
      }

      resources {
        cpu    = var.redis_exporter_cpu
        memory = var.redis_exporter_memory
      }
    }
  }
}
