"""Tests of the Kubernetes stand-in (runnet.emulator.kube): HTTP probes, kubectl, kopf."""
