"""Test support: discovery-schema conformance of emulator responses and a gcloud harness."""
