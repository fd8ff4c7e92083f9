"""Tests against a real kube-apiserver and etcd (tools/control-plane, `make control-plane`)."""
