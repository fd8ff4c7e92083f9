// Command kube-control-plane runs a real kube-apiserver and etcd in one process, on
// loopback, for tests:
//
//	kube-control-plane --port PORT --kubeconfig PATH --data-dir DIR
//
// It prints one line to stdout, the server URL, once /readyz answers ok (the admin
// kubeconfig is written to PATH before), and serves until SIGTERM or SIGINT, then stops the
// apiserver and etcd and exits 0. --port 0 picks a free port. Everything the apiserver and
// etcd log goes to DIR/control-plane.log; errors of its own go to stderr as well.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

const (
	readyTimeout = 120 * time.Second
	stopTimeout  = 60 * time.Second
)

func main() {
	port := flag.Int("port", 0, "secure port of the apiserver on 127.0.0.1 (0: a free one)")
	kubeconfig := flag.String("kubeconfig", "", "where to write the admin kubeconfig (default DATA-DIR/kubeconfig)")
	dataDir := flag.String("data-dir", "", "folder for etcd's data, the certificates and the log (required)")
	flag.Parse()
	if *dataDir == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: kube-control-plane --port PORT --kubeconfig PATH --data-dir DIR")
		os.Exit(2)
	}
	os.Exit(run(*port, *kubeconfig, *dataDir))
}

func run(port int, kubeconfig, dataDir string) int {
	dataDir, err := filepath.Abs(dataDir)
	if err == nil {
		err = os.MkdirAll(dataDir, 0o700)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-control-plane: %v\n", err)
		return 1
	}
	if kubeconfig == "" {
		kubeconfig = filepath.Join(dataDir, "kubeconfig")
	}
	logPath := filepath.Join(dataDir, "control-plane.log")
	stdout, stderr, err := redirectOutput(logPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kube-control-plane: %v\n", err)
		return 1
	}
	fail := func(err error) int {
		fmt.Fprintf(stderr, "kube-control-plane: %v (log: %s)\n", err, logPath)
		return 1
	}

	// The first SIGTERM or SIGINT cancels stopping; the apiserver's own context, serving, is
	// cancelled only once it is ready (or has failed), because kube-apiserver exits 255 when
	// stopped during its post-start hooks. A second signal exits 1 at once.
	stopping, stop := context.WithCancel(context.Background())
	defer stop()
	serving, cancel := context.WithCancel(context.Background())
	defer cancel()
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		klog.Info("kube-control-plane: stopping")
		stop()
		<-signals
		fmt.Fprintln(stderr, "kube-control-plane: second signal, exiting at once")
		os.Exit(1)
	}()

	start := time.Now()
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fail(err)
	}
	port = listener.Addr().(*net.TCPAddr).Port
	serverURL := fmt.Sprintf("https://127.0.0.1:%d", port)

	certs, err := newPKI(filepath.Join(dataDir, "pki"))
	if err != nil {
		return fail(err)
	}
	etcd, etcdURL, err := startEtcd(stopping, filepath.Join(dataDir, "etcd"), logPath)
	if err != nil {
		listener.Close()
		if stopping.Err() != nil {
			return 0
		}
		return fail(err)
	}
	defer closeEtcd(etcd)

	apiserverDone := make(chan error, 1)
	go func() {
		apiserverDone <- runAPIServer(serving, listener, apiserverArgs(port, etcdURL, certs.Dir, certs))
	}()

	err = waitReady(serverURL, certs, apiserverDone, etcd)
	if err == nil && stopping.Err() == nil {
		err = writeKubeconfig(kubeconfig, serverURL, certs)
	}
	if err != nil {
		cancel()
		_ = shutdown(apiserverDone, etcd)
		return fail(err)
	}
	if stopping.Err() != nil { // asked to stop before it was ready
		cancel()
		if err := shutdown(apiserverDone, etcd); err != nil {
			return fail(err)
		}
		return 0
	}
	klog.Infof("kube-control-plane: ready at %s in %s", serverURL, time.Since(start).Round(time.Millisecond))
	fmt.Fprintln(stdout, serverURL)
	stdout.Close()

	select {
	case <-stopping.Done():
	case err := <-apiserverDone:
		return fail(fmt.Errorf("kube-apiserver stopped on its own: %v", err))
	case err := <-etcd.Err():
		cancel()
		_ = shutdown(apiserverDone, etcd)
		return fail(fmt.Errorf("etcd stopped on its own: %v", err))
	}
	begin := time.Now()
	cancel()
	if err := shutdown(apiserverDone, etcd); err != nil {
		return fail(err)
	}
	klog.Infof("kube-control-plane: stopped in %s", time.Since(begin).Round(time.Millisecond))
	klog.Flush()
	return 0
}

// redirectOutput sends file descriptors 1 and 2 (klog, etcd, anything the apiserver
// prints) to the log file and returns the original stdout and stderr. Crashes are
// reported on the original stderr too.
func redirectOutput(logPath string) (stdout, stderr *os.File, err error) {
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer log.Close()
	outFD, err := unix.Dup(1)
	if err != nil {
		return nil, nil, err
	}
	errFD, err := unix.Dup(2)
	if err != nil {
		return nil, nil, err
	}
	stdout, stderr = os.NewFile(uintptr(outFD), "stdout"), os.NewFile(uintptr(errFD), "stderr")
	if err := unix.Dup2(int(log.Fd()), 1); err != nil {
		return nil, nil, err
	}
	if err := unix.Dup2(int(log.Fd()), 2); err != nil {
		return nil, nil, err
	}
	_ = debug.SetCrashOutput(stderr, debug.CrashOptions{})
	return stdout, stderr, nil
}

// waitReady polls /readyz (as the admin) until it answers 200 "ok".
func waitReady(serverURL string, p *pki, apiserverDone chan error, etcd *embed.Etcd) error {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(p.caPEM)
	cert, err := tls.X509KeyPair(p.adminCertPEM, p.adminKeyPEM)
	if err != nil {
		return err
	}
	client := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: roots, Certificates: []tls.Certificate{cert}},
		},
	}
	defer client.CloseIdleConnections()
	deadline := time.After(readyTimeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if rsp, err := client.Get(serverURL + "/readyz"); err == nil {
			body, _ := io.ReadAll(io.LimitReader(rsp.Body, 1024))
			rsp.Body.Close()
			if rsp.StatusCode == http.StatusOK && string(body) == "ok" {
				return nil
			}
		}
		select {
		case err := <-apiserverDone:
			apiserverDone <- err // for stop
			return fmt.Errorf("kube-apiserver stopped before it was ready: %v", err)
		case err := <-etcd.Err():
			return fmt.Errorf("etcd stopped before the apiserver was ready: %v", err)
		case <-deadline:
			return fmt.Errorf("/readyz not ok after %s", readyTimeout)
		case <-tick.C:
		}
	}
}

// shutdown waits for the apiserver (whose context is cancelled) to return, then stops etcd.
func shutdown(apiserverDone <-chan error, etcd *embed.Etcd) error {
	var err error
	select {
	case err = <-apiserverDone:
	case <-time.After(stopTimeout):
		err = fmt.Errorf("kube-apiserver did not stop within %s", stopTimeout)
	}
	closeEtcd(etcd)
	return err
}

var etcdClosed sync.Once

// closeEtcd stops etcd once (a second embed.Etcd.Close panics).
func closeEtcd(e *embed.Etcd) { etcdClosed.Do(e.Close) }
