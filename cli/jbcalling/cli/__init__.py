"""jbctl: the operators' command line for a jbcalling cluster (Nomad + Consul)."""
