"""The Helm chart (deploy/helm/runnet) with the real helm CLI (tools/helm, `make helm`)."""
