# The variables every job shares, declared once. jbctl's render (cli/jbcalling/cli/render.py)
# parses each jobs/<service>.nomad.hcl together with this file, so Nomad's own parser checks
# these declarations; a job file declares only its own variables. A job that does not use one
# of these ignores it.

variable "release" {
  description = "Release version jbctl stamps on the job (meta jb_release)."
  type        = string
  default     = "0.0.0"
}

# Shared: stt loads it, signaling offers "detect" when it is set.
variable "langid_model" {
  description = "Folder (models volume) of the multilingual Whisper for spoken-language ID; set, stt serves lang=auto and the page offers \"I speak: detect\". Needs vi and en on VAD backends (stt_languages). Empty: off."
  type        = string
  default     = ""
}

variable "datacenters" {
  description = "Nomad datacenters the job may run in."
  type        = list(string)
  default     = ["dc1"]
}

variable "driver" {
  description = "Task driver: exec in production, raw_exec on the dev cluster."
  type        = string
  default     = "exec"
}

variable "app_root" {
  description = "The release's venv on the node (/opt/jbcalling/releases/<release>, set by jbctl); the service starts from its bin/."
  type        = string
  default     = "/opt/jbcalling/releases/0.0.0"
}

variable "host_volume_root" {
  description = "Where the node keeps its host volumes; raw_exec cannot mount, so it uses this path directly."
  type        = string
  default     = "/opt/jbcalling/volumes"
}

variable "consul_http_addr" {
  description = "The node's Consul agent, which the service asks for healthy instances of the others."
  type        = string
  default     = "http://127.0.0.1:8500"
}

variable "task_uid" {
  description = "Owner of the files templates render into secrets/: the task's user (65534, nobody, under exec)."
  type        = number
  default     = 65534
}

variable "task_gid" {
  description = "Group of the files templates render into secrets/ (65534, nogroup)."
  type        = number
  default     = 65534
}

variable "min_healthy_time" {
  description = "How long an instance must pass its checks to count as healthy."
  type        = string
  default     = "10s"
}

variable "healthy_deadline" {
  description = "How long an instance may take to become healthy before the deployment fails."
  type        = string
  default     = "2m"
}

variable "progress_deadline" {
  description = "How long a deployment may go without a newly healthy instance."
  type        = string
  default     = "5m"
}
