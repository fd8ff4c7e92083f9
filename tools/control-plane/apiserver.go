package main

import (
	"context"
	"fmt"
	"net"

	"github.com/spf13/pflag"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	"k8s.io/apiserver/pkg/server/flagz"
	"k8s.io/client-go/rest"
	basecompatibility "k8s.io/component-base/compatibility"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
	"k8s.io/kubernetes/cmd/kube-apiserver/app/options"
)

// apiserverArgs are the kube-apiserver flags, modelled on controller-runtime's envtest.
func apiserverArgs(port int, etcdURL, certDir string, p *pki) []string {
	return []string{
		"--service-cluster-ip-range=10.0.0.0/24",
		"--allow-privileged=true",
		"--disable-admission-plugins=ServiceAccount",
		"--authorization-mode=RBAC",
		fmt.Sprintf("--secure-port=%d", port),
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// The lease reconciler refuses a loopback address for the kubernetes Service's endpoints,
		// and nothing here runs in a Pod to use them.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--service-account-issuer=https://127.0.0.1:%d/", port),
		"--service-account-key-file=" + p.SAKey,
		"--service-account-signing-key-file=" + p.SAKey,
		"--client-ca-file=" + p.CACert,
		"--etcd-servers=" + etcdURL,
		"--cert-dir=" + certDir,
		"--v=0",
	}
}

// runAPIServer runs kube-apiserver in this process until ctx is cancelled, serving on
// listener. It does what the kube-apiserver command does, without its signal handler.
func runAPIServer(ctx context.Context, listener net.Listener, args []string) error {
	s := options.NewServerRunOptions()
	registry := s.GenericServerRunOptions.ComponentGlobalsRegistry
	featureGate := registry.FeatureGateFor(basecompatibility.DefaultKubeComponent)

	namedFlagSets := s.Flags()
	s.Flagz = flagz.NamedFlagSetsReader{FlagSets: namedFlagSets}
	fs := pflag.NewFlagSet("kube-apiserver", pflag.ContinueOnError)
	for _, f := range namedFlagSets.FlagSets {
		fs.AddFlagSet(f)
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := registry.Set(); err != nil {
		return err
	}
	// The apiserver's loopback clients should not log the warnings it issues itself.
	rest.SetDefaultWarningHandler(rest.NoWarnings{})
	if err := logsapi.ValidateAndApply(s.Logs, featureGate); err != nil {
		return err
	}
	s.SecureServing.Listener = listener

	completed, err := s.Complete(ctx)
	if err != nil {
		return err
	}
	if errs := completed.Validate(); len(errs) != 0 {
		return utilerrors.NewAggregate(errs)
	}
	return app.Run(ctx, completed)
}
