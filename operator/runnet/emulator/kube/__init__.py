"""An in-memory Kubernetes API server strict enough for kopf and kubectl, built on kmock."""

from runnet.emulator.kube.errors import ApiError
from runnet.emulator.kube.runner import KubeEmulatorThread, kubeconfig, serve_cli, write_kubeconfig
from runnet.emulator.kube.server import KubeEmulator

__all__ = ["ApiError", "KubeEmulator", "KubeEmulatorThread", "kubeconfig", "serve_cli", "write_kubeconfig"]
