# The local dev cluster (`jbctl cluster up`): one node carrying every role, raw_exec, small asks.
# jbctl adds release, app_root (its own venv) and host_volume_root (the cluster's volumes).

datacenters = ["dc1"]
driver      = "raw_exec"

redis_port   = 0
redis_cpu    = 100
redis_memory = 128

# The ingress: plain HTTP on a dynamic port of the loopback (a browser treats http://127.0.0.1 as
# a secure context); `jbctl deploy` prints its URL.
ingress_http_port  = 0
ingress_https_port = 0
ingress_tls        = false
ingress_acme       = false
ingress_cpu        = 50
ingress_memory     = 64

signaling_count  = 1
signaling_max    = 4
signaling_port   = 0
signaling_cpu    = 100
signaling_memory = 128

# Speech services: the dev models (real English models from PyPI, stand-ins for the rest, which
# `jbctl deploy` puts into the dev cluster's models volume), one small replica each.

mt_count       = 1
mt_max         = 2
mt_port        = 0
mt_cpu         = 200
mt_memory      = 512
mt_translators = 1
mt_pairs       = { "en-vi" = "opus-mt-en-vi-standin", "vi-en" = "opus-mt-vi-en-standin" }

tts_count   = 1
tts_max     = 2
tts_port    = 0
tts_cpu     = 200
tts_memory  = 512
tts_workers = 1
tts_voices  = { "en" = "en_US-joe-medium", "vi" = "vi_VN-standin-medium" }

stt_count        = 1
stt_max          = 2
stt_port         = 0
stt_cpu          = 300
stt_memory       = 1024
stt_threads      = 1
stt_max_sessions = 8
stt_languages = {
  "en" = "vad-whisper:whisper-tiny.en-ct2"
  "vi" = "vad-sherpa:sherpa-zipformer-vi-offline-standin"
}
# "I speak: detect" is off by default: it makes stt load a second set of recognizers and measure
# them at every start, which slows stt's restart (tests/integration/test_stt_kill.py bounds it).
# To try it: `jbctl deploy stt signaling --var langid_model=whisper-lid-standin` (the stand-in,
# services/jbcalling/speech/standin_whisper_lid.py, is in the dev models volume).
langid_model = ""

# A dev machine is often busy (tests, a browser): a speech service may need most of a minute to
# import its engines there.
min_healthy_time  = "2s"
healthy_deadline  = "60s"
progress_deadline = "90s"

gateway_count         = 1
gateway_port          = 0
gateway_ice_addresses = ["127.0.0.1"]
gateway_cpu           = 200
gateway_memory        = 256

# Prometheus and Alertmanager: short intervals so that a test sees a scrape, a rule and an alert
# within seconds; alert_webhook_url empty (tests redeploy alertmanager with their receiver).
prometheus_scrape_interval = "5s"
prometheus_scrape_timeout  = "4s"
prometheus_eval_interval   = "5s"
prometheus_sd_refresh      = "5s"
prometheus_retention       = "1d"
prometheus_cpu             = 100
prometheus_memory          = 256
alert_down_for             = "5s"
alert_for                  = "1m"
alertmanager_cpu           = 50
alert_group_wait           = "1s"
