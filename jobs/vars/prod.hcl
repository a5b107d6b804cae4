# Production: the three-node cluster of the design contract, provisioned by ansible/.
# Resources are the 3-node plan's; host_volume_root is where Ansible keeps the volumes. jbctl adds
# release and app_root (/opt/jbcalling/releases/<release>: the release's venv that Ansible
# installs, so that a rollback to an earlier job version also runs the earlier code).
# Every port but the ingress's is dynamic (0): Nomad picks one in 20000-32000, which the firewall
# opens between the nodes only; services find each other in Consul.

datacenters      = ["dc1"]
driver           = "exec"
host_volume_root = "/opt/jbcalling/volumes"

redis_port   = 0
redis_cpu    = 500
redis_memory = 1024

signaling_count  = 2
signaling_max    = 4
signaling_port   = 0
signaling_cpu    = 500
signaling_memory = 256

# Speech services (the three-node plan): models from `jbctl models pull`, synced by Ansible.

mt_count       = 1
mt_max         = 2
mt_port        = 0
mt_cpu         = 2000
mt_memory      = 1536
mt_translators = 2
mt_pairs       = { "en-vi" = "opus-mt-en-vi", "vi-en" = "opus-mt-vi-en" }

tts_count   = 1
tts_max     = 2
tts_port    = 0
tts_cpu     = 1000
tts_memory  = 512
tts_workers = 1
tts_voices  = { "en" = "en_US-joe-medium", "vi" = "vi_VN-vais1000-medium" }

stt_count        = 1
stt_max          = 2
stt_port         = 0
stt_cpu          = 3000
stt_memory       = 1536
stt_threads      = 2
stt_max_sessions = 16
stt_languages = {
  "en" = "streaming:sherpa-onnx-streaming-zipformer-en-2023-06-26"
  "vi" = "vad-sherpa:sherpa-onnx-zipformer-vi-30M-int8-2026-02-09"
}
# "I speak: detect" is off: it needs en on a VAD backend (the streaming zipformer decodes as the
# audio comes, before an utterance's language is known). To offer it: en = vad-whisper with a
# Whisper model, and langid_model = "sherpa-onnx-whisper-tiny" (`jbctl models pull`; about
# 0.2 s per utterance on one thread, benchmarks/speech_langid_bench.py).
langid_model = ""

min_healthy_time  = "10s"
healthy_deadline  = "2m"
progress_deadline = "5m"

# The public origin: nginx on each edge node, TLS from Nomad Variable nomad/jobs/ingress
# (tls_cert, tls_key; Ansible's jb_origin role writes them), ACME challenges from host volume
# "acme" (certbot's webroot).
ingress_count      = 1
ingress_http_port  = 80
ingress_https_port = 443
ingress_tls        = true
ingress_acme       = true
ingress_listen     = "0.0.0.0"

public_url = "https://call.example.org"
stun_urls  = ["stun:call.example.org:3478"]
turn_urls  = ["turn:call.example.org:3478?transport=udp", "turn:call.example.org:3478?transport=tcp"]

gateway_count        = 1
gateway_port         = 0
gateway_announced_ip = "" # the edge node's public IP when it is behind 1:1 NAT
gateway_udp_ports    = "40000-44999" # = Ansible's jb_gateway_udp_port_min/max
gateway_cpu          = 1500
gateway_memory       = 2048

# Prometheus and Alertmanager on the edge node (the operator reaches Prometheus at
# <public_url>/prometheus/ with basic auth). The agents' APIs are TLS: the CA, a client certificate
# and a Consul token come from Nomad Variable nomad/jobs/prometheus (Ansible's jb_origin role).
prometheus_scrape_interval = "15s"
prometheus_scrape_timeout  = "10s"
prometheus_eval_interval   = "15s"
prometheus_sd_refresh      = "30s"
prometheus_retention       = "15d"
# The edge node's 4000 MHz: redis 500 + signaling 2 x 500 + ingress 200 + gateway 1500 +
# prometheus 200 + alertmanager 50 = 3450, leaving room for a signaling canary (500).
prometheus_cpu             = 200
prometheus_memory          = 512
hashi_metrics_scheme       = "https"
consul_metrics_port        = 8501
hashi_tls                  = true
alert_down_for             = "1m"
alert_for                  = "5m"
alertmanager_cpu           = 50
alert_group_wait           = "30s"
alert_webhook_url          = "" # where the operator's alerts go, e.g. a chat's incoming webhook
