"""In-process stand-ins for the Google Cloud control plane and the Kubernetes API server."""
