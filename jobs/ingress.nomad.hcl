# ingress: the public origin - Debian's nginx on each edge node, in front of the signaling
# replicas it reads from Consul (healthy instances only). TLS on 443 with the certificate of
# Nomad Variable nomad/jobs/ingress (tls_cert, tls_key: Ansible's jb_origin role writes them),
# port 80 for ACME challenges and a redirect, WebSocket upgrade, and routing sticky by room id
# (docs/decisions.md). A change in the set of signaling replicas reloads nginx with SIGHUP, which
# keeps open sockets. Fixed ports (80/443 in prod): no canary, replaced one node at a time.

variable "nginx_bin" {
  description = "Path of Debian's nginx binary on the node."
  type        = string
  default     = "/usr/sbin/nginx"
}

variable "ingress_count" {
  description = "nginx instances: one per edge node (they bind the same fixed ports)."
  type        = number
  default     = 1
}

variable "ingress_http_port" {
  description = "Port of plain HTTP (ACME challenges and the redirect; everything when ingress_tls is false); 0 lets Nomad pick one."
  type        = number
  default     = 80
}

variable "ingress_https_port" {
  description = "Port of HTTPS (when ingress_tls); 0 lets Nomad pick one."
  type        = number
  default     = 443
}

variable "ingress_tls" {
  description = "Serve HTTPS with the certificate of Nomad Variable nomad/jobs/ingress and redirect HTTP to it; false: plain HTTP only (the dev cluster)."
  type        = bool
  default     = true
}

variable "ingress_acme" {
  description = "Answer /.well-known/acme-challenge/ on HTTP from host volume \"acme\" (certbot's webroot); the node must declare that volume."
  type        = bool
  default     = true
}

variable "ingress_listen" {
  description = "Address nginx binds; empty: the node's Nomad address (the dev cluster's loopback)."
  type        = string
  default     = "0.0.0.0"
}

variable "ingress_server_name" {
  description = "nginx server_name; \"_\" answers any Host."
  type        = string
  default     = "_"
}

variable "ingress_hsts_max_age" {
  description = "Strict-Transport-Security max-age on HTTPS responses, seconds."
  type        = number
  default     = 31536000
}

variable "ingress_ws_timeout" {
  description = "How long a quiet WebSocket stays open through the proxy (the client pings more often)."
  type        = string
  default     = "1h"
}

variable "prometheus_user" {
  description = "User name of the operator's basic auth on /prometheus/ (the password: prometheus_password in Nomad Variable nomad/jobs/ingress, which jbctl generates)."
  type        = string
  default     = "operator"
}

variable "ingress_cpu" {
  description = "CPU reserved per instance, MHz."
  type        = number
  default     = 200
}

variable "ingress_memory" {
  description = "Memory reserved per instance, MB."
  type        = number
  default     = 128
}

variable "blackbox_bin" {
  description = "Path of Debian's prometheus-blackbox-exporter binary on the node (the prober task beside nginx)."
  type        = string
  default     = "/usr/bin/prometheus-blackbox-exporter"
}

variable "ingress_probe_cpu" {
  description = "CPU reserved for the prober task per instance, MHz (the edge node's 4000 must still hold a signaling canary)."
  type        = number
  default     = 20
}

variable "ingress_probe_memory" {
  description = "Memory reserved for the prober task per instance, MB."
  type        = number
  default     = 32
}

locals {
  # Under exec the task sees its own directories at /local and /secrets (the chroot); raw_exec
  # runs in the allocation directory on the host. nginx gets absolute paths either way.
  listen  = var.ingress_listen != "" ? "${var.ingress_listen}:" : "{{ env \"NOMAD_IP_http\" }}:"
  scheme  = var.ingress_tls ? "https" : "http"
  headers = <<-EOT
    add_header X-Content-Type-Options "nosniff" always;
    add_header Referrer-Policy "no-referrer" always;
    add_header X-Frame-Options "DENY" always;
    %{if var.ingress_tls}add_header Strict-Transport-Security "max-age=${var.ingress_hsts_max_age}" always;%{endif}
    EOT
  # What signaling serves; its health and metrics endpoints (and FastAPI's schema pages) are for
  # the cluster, not the public.
  app = <<-EOT
    location ~ ^/(metrics|ready|health|docs|redoc|openapi\.json)(/|$) {
      return 404;
    }

    # Prometheus (jobs/prometheus.nomad.hcl), for the operator only: basic auth, never public.
    # $jb_operator comes from secrets/operator.conf.
    location ^~ /prometheus/ {
      ${indent(2, local.headers)}
      if ($jb_operator != 1) {
        ${indent(4, local.headers)}
        add_header WWW-Authenticate 'Basic realm="jbcalling operator", charset="UTF-8"' always;
        return 401;
      }
      proxy_pass http://prometheus;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto ${local.scheme};
      proxy_set_header Authorization "";
    }

    location /ws/ {
      proxy_pass http://signaling;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $jb_connection;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto ${local.scheme};
      proxy_read_timeout ${var.ingress_ws_timeout};
      proxy_send_timeout ${var.ingress_ws_timeout};
      proxy_buffering off;
    }

    location / {
      proxy_pass http://signaling;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto ${local.scheme};
      proxy_hide_header X-Content-Type-Options;
      proxy_hide_header Referrer-Policy;
      proxy_hide_header X-Frame-Options;
      proxy_hide_header Strict-Transport-Security;
      client_max_body_size 64k;
    }
    EOT
}

job "ingress" {
  meta {
    jb_service = "ingress"
    # the operator's password for /prometheus/ (jbctl generates it in nomad/jobs/ingress)
    jb_secrets = "prometheus_password"
  }

  constraint {
    attribute = "${meta.jb_role}"
    operator  = "set_contains"
    value     = "edge"
  }

  # Fixed ports: two instances never share a node.
  constraint {
    operator = "distinct_hosts"
    value    = "true"
  }

  group "ingress" {
    count = var.ingress_count

    network {
      port "http" {
        static = var.ingress_http_port
      }
      # the prober's (task "probe"): Prometheus asks it to probe this nginx
      port "probe" {}
      dynamic "port" {
        for_each = var.ingress_tls ? ["https"] : []
        labels   = [port.value]
        content {
          static = var.ingress_https_port
        }
      }
    }

    dynamic "volume" {
      for_each = var.ingress_acme ? ["acme"] : []
      labels   = [volume.value]
      content {
        type      = "host"
        source    = "acme"
        read_only = true
      }
    }

    service {
      name     = "ingress"
      port     = "http"
      provider = "consul"
      # jb-exporter: nginx has no /metrics; Prometheus scrapes the prober task (blackbox) at
      # metrics_port, which probes this nginx's /.jb/ingress (probe_success), job label "ingress"
      # (jobs/prometheus.nomad.hcl).
      tags = ["jbcalling", "public", local.scheme, "jb-exporter"]

      meta {
        version = var.release
        role    = "edge"
        scheme  = local.scheme
        # the port participants use: https when TLS is on, else http
        public_port  = var.ingress_tls ? "${NOMAD_PORT_https}" : "${NOMAD_PORT_http}"
        metrics_port = "${NOMAD_PORT_probe}"
        metrics_path = "/probe"
        probe_module = "ingress_alive"
        probe_target = "http://${NOMAD_ADDR_http}/.jb/ingress"
        # dashboard: request rates per service
        dashboard = "/prometheus/graph?g0.expr=sum%20by%20%28job%2C%20status%29%20%28rate%28jb_http_requests_total%5B5m%5D%29%29&g0.tab=0&g0.range_input=1h"
      }

      # nginx itself (a fixed answer on the plain port); signaling's health is its own check.
      check {
        name     = "ingress alive"
        type     = "http"
        path     = "/.jb/ingress"
        interval = "5s"
        timeout  = "2s"

        # nginx answers this from memory: 3 failures in a row, 5 s apart (10 to 17 s without an
        # answer), is a hung nginx; grace 20s covers its start (the chroot is built before).
        check_restart {
          limit = 3
          grace = "20s"
        }
      }
    }

    task "nginx" {
      driver       = var.driver
      kill_timeout = "15s"
      # SIGQUIT: nginx's graceful stop (finishes the requests it is serving)
      kill_signal = "SIGQUIT"

      dynamic "volume_mount" {
        for_each = var.ingress_acme && var.driver == "exec" ? ["acme"] : []
        content {
          volume      = "acme"
          destination = "/acme"
          read_only   = true
        }
      }

      # Under exec, nginx runs as nobody and may bind 80/443 only with this one capability.
      dynamic "config" {
        for_each = var.driver == "exec" ? [1] : []
        content {
          command  = var.nginx_bin
          args     = ["-c", "${NOMAD_TASK_DIR}/nginx.conf", "-e", "stderr", "-g", "daemon off;"]
          cap_drop = ["all"]
          cap_add  = ["net_bind_service"]
        }
      }
      dynamic "config" {
        for_each = var.driver == "exec" ? [] : [1]
        content {
          command = var.nginx_bin
          args    = ["-c", "${NOMAD_TASK_DIR}/nginx.conf", "-e", "stderr", "-g", "daemon off;"]
        }
      }

      template {
        destination   = "local/nginx.conf"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          worker_processes 1;
          pid {{ env "NOMAD_TASK_DIR" }}/nginx.pid;
          error_log stderr warn;

          events {
            worker_connections 4096;
          }

          http {
            # Every path nginx writes is inside the allocation.
            client_body_temp_path {{ env "NOMAD_TASK_DIR" }}/client_body;
            proxy_temp_path {{ env "NOMAD_TASK_DIR" }}/proxy;
            fastcgi_temp_path {{ env "NOMAD_TASK_DIR" }}/fastcgi;
            uwsgi_temp_path {{ env "NOMAD_TASK_DIR" }}/uwsgi;
            scgi_temp_path {{ env "NOMAD_TASK_DIR" }}/scgi;
            access_log /dev/stdout combined;
            server_tokens off;
            default_type application/octet-stream;
            # room for secrets/operator.conf's long key (an Authorization header)
            map_hash_bucket_size 256;

            # The room id of every room path signaling serves (/r/<room>, /api/rooms/<room>/...,
            # /ws/rooms/<room>): all of a room's requests and sockets reach the same replica.
            # Anything else (the create call, static files) spreads by request id.
            map $uri $jb_room {
              "~^/r/(?<room>[A-Za-z0-9_-]+)/?$" $room;
              "~^/api/rooms/(?<room>[A-Za-z0-9_-]+)/" $room;
              "~^/ws/rooms/(?<room>[A-Za-z0-9_-]+)/?$" $room;
              default "";
            }
            map $jb_room $jb_route {
              "" $request_id;
              default $jb_room;
            }
            map $http_upgrade $jb_connection {
              default upgrade;
              "" close;
            }

            upstream signaling {
              hash $jb_route consistent;
              {{ range service "signaling" }}server {{ .Address }}:{{ .Port }} max_fails=2 fail_timeout=5s;
              {{ else }}server 127.0.0.1:9 down;  # no healthy signaling replica in Consul
              {{ end }}
              keepalive 16;
            }

            # The operator's credentials for /prometheus/: read by the master when it loads the
            # config (a worker could not read a file in the dev cluster's 0700 data dir).
            include {{ env "NOMAD_SECRETS_DIR" }}/operator.conf;

            upstream prometheus {
              {{ range service "prometheus" }}server {{ .Address }}:{{ .Port }};
              {{ else }}server 127.0.0.1:9 down;  # no healthy prometheus in Consul
              {{ end }}
            }

            server {
              listen ${local.listen}{{ env "NOMAD_PORT_http" }} default_server;
              server_name ${var.ingress_server_name};
              ${indent(6, local.headers)}

              location = /.jb/ingress {
                access_log off;
                default_type text/plain;
                return 200 "ok\n";
              }
              %{if var.ingress_acme}
              location ^~ /.well-known/acme-challenge/ {
                root ${var.driver == "exec" ? "/acme" : "${var.host_volume_root}/acme"};
                default_type text/plain;
              }
              %{endif}
              %{if var.ingress_tls}
              location / {
                return 301 https://$host{{ if ne (env "NOMAD_PORT_https") "443" }}:{{ env "NOMAD_PORT_https" }}{{ end }}$request_uri;
              }
              %{else}
              ${indent(6, local.app)}
              %{endif}
            }
            %{if var.ingress_tls}
            server {
              listen ${local.listen}{{ env "NOMAD_PORT_https" }} ssl http2 default_server;
              server_name ${var.ingress_server_name};
              ssl_certificate {{ env "NOMAD_SECRETS_DIR" }}/tls.crt;
              ssl_certificate_key {{ env "NOMAD_SECRETS_DIR" }}/tls.key;
              ssl_protocols TLSv1.2 TLSv1.3;
              ssl_prefer_server_ciphers off;
              ssl_session_cache shared:jb_tls:10m;
              ssl_session_timeout 1d;
              ${indent(6, local.headers)}
              ${indent(6, local.app)}
            }
            %{endif}
          }
          EOT
      }

      # The operator's basic auth for /prometheus/: the exact Authorization header of user
      # prometheus_user with password prometheus_password (Nomad Variable nomad/jobs/ingress).
      template {
        destination   = "secrets/operator.conf"
        perms         = "0600"
        uid           = var.task_uid
        gid           = var.task_gid
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data          = <<-EOT
          map $http_authorization $jb_operator {
            default 0;
            {{ with nomadVar "nomad/jobs/ingress" }}"Basic {{ print "${var.prometheus_user}:" .prometheus_password | base64Encode }}" 1;{{ end }}
          }
          EOT
      }

      # The certificate and its key: files in secrets/ (0600, the task's user), never the
      # environment; a renewed certificate reloads nginx.
      dynamic "template" {
        for_each = var.ingress_tls ? { "tls.crt" = "tls_cert", "tls.key" = "tls_key" } : {}
        content {
          destination   = "secrets/${template.key}"
          perms         = "0600"
          uid           = var.task_uid
          gid           = var.task_gid
          change_mode   = "signal"
          change_signal = "SIGHUP"
          data          = "{{ with nomadVar \"nomad/jobs/ingress\" }}{{ .${template.value} }}{{ end }}\n"
        }
      }

      resources {
        cpu    = var.ingress_cpu
        memory = var.ingress_memory
      }
    }

    # Debian's blackbox exporter: on each scrape Prometheus asks it (/probe, module and target
    # from the service's meta) whether this nginx answers /.jb/ingress, the fixed answer the
    # Consul check reads too. probe_success 0 with the prober up is an nginx that does not answer
    # (ServiceNoHealthyInstance); the whole job stopped, the target goes from Consul.
    task "probe" {
      driver = var.driver

      config {
        command = var.blackbox_bin
        args = [
          "--config.file=${NOMAD_TASK_DIR}/blackbox.yml",
          "--web.listen-address=${NOMAD_ADDR_probe}",
          "--log.level=warn",
        ]
      }

      template {
        destination   = "local/blackbox.yml"
        change_mode   = "signal"
        change_signal = "SIGHUP"
        data = yamlencode({
          modules = {
            ingress_alive = {
              prober  = "http"
              timeout = "3s"
              http = {
                valid_status_codes              = [200]
                fail_if_body_not_matches_regexp = ["^ok"]
                preferred_ip_protocol           = "ip4"
                ip_protocol_fallback            = false
                follow_redirects                = false
              }
            }
          }
        })
      }

      resources {
        cpu    = var.ingress_probe_cpu
        memory = var.ingress_probe_memory
      }
    }
  }
}
