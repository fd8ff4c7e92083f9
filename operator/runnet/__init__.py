"""runnet: a Kubernetes operator for Cloud Run networking (fixed egress IPs, Private Service Connect)."""

__version__ = "0.1.0"
