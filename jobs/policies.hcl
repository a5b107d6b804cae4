# What every job shares, written once: its datacenters and type, jbctl's ownership meta, and the
# update, restart and reschedule policies. jbctl's render (cli/jbcalling/cli/render.py) parses
# this file with Nomad's own parser, like a job file, and fills every field that a job file
# leaves unset from it, field by field; a job file sets only the fields in which it differs
# (`restart { delay = "1s" }`). It is not a job: nothing deploys it.
job "jb-policies" {
  datacenters = var.datacenters
  type        = "service"

  # jbctl acts only on jobs that carry jb_managed_by; jb_release is the release deployed.
  meta {
    jb_managed_by = "jbctl"
    jb_release    = var.release
  }

  # Rolling, one instance at a time, each healthy before the next; a deployment that fails
  # rolls back to the last good version by itself. No canary unless the job asks for one (the
  # stateless services do; a canary of the gateway, Redis or the ingress could not keep rooms,
  # data or fixed ports).
  update {
    max_parallel      = 1
    auto_revert       = true
    health_check      = "checks"
    min_healthy_time  = var.min_healthy_time
    healthy_deadline  = var.healthy_deadline
    progress_deadline = var.progress_deadline
  }

  group "every-group" {
    # A crashed task restarts in place a few times, then the allocation is rescheduled
    # (elsewhere when it can be), with growing delays and never giving up.
    restart {
      attempts = 3
      interval = "2m"
      delay    = "5s"
      mode     = "delay"
    }

    reschedule {
      delay          = "10s"
      delay_function = "exponential"
      max_delay      = "2m"
      unlimited      = true
    }
  }
}
