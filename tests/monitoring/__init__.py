"""deploy/monitoring: alert rules and the Grafana dashboard against the metrics runnet serves."""
