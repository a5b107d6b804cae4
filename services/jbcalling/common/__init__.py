"""Code shared by every jbcalling service: settings, structured logs, health and metrics."""
