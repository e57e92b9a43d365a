package local

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlane is kube-apiserver and etcd as envtest runs them, with etcd's data kept in the
// data directory. The API server's certificates are made afresh at every start: envtest keeps
// only the serving certificate, not the CA that signed it, so a client could not trust a
// certificate left by an earlier start. The kubeconfig is therefore rewritten at every start.
type controlPlane struct {
	env  *envtest.Environment
	logs []*os.File
}

// startControlPlane starts etcd on dirs.etcd and kube-apiserver, on port when not 0, with the
// binaries in assets, and returns a cluster-admin config.
func startControlPlane(dirs layout, assets string, port int) (*controlPlane, *rest.Config, error) {
	// envtest reuses a certificate directory that has a serving certificate without knowing its
	// CA; a fresh directory makes it generate both.
	if err := os.RemoveAll(dirs.apiserver); err != nil {
		return nil, nil, fmt.Errorf("clearing the API server's certificates: %w", err)
	}
	for _, dir := range []string{dirs.apiserver, dirs.etcd, dirs.logs} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, nil, fmt.Errorf("creating %s: %w", dir, err)
		}
	}
	cp := &controlPlane{}
	apiLog, err := cp.openLog(filepath.Join(dirs.logs, "kube-apiserver.log"))
	if err != nil {
		return nil, nil, err
	}
	etcdLog, err := cp.openLog(filepath.Join(dirs.logs, "etcd.log"))
	if err != nil {
		cp.closeLogs()
		return nil, nil, err
	}
	api := &envtest.APIServer{CertDir: dirs.apiserver, Out: apiLog, Err: apiLog, StartTimeout: 2 * time.Minute}
	if port != 0 {
		api.SecureServing = envtest.SecureServing{ListenAddr: envtest.ListenAddr{Address: "127.0.0.1", Port: strconv.Itoa(port)}}
	}
	etcd := &envtest.Etcd{DataDir: dirs.etcd, Out: etcdLog, Err: etcdLog, StartTimeout: 2 * time.Minute}
	// envtest skips fsync for speed; data kept between runs must survive a crash.
	etcd.Configure().Disable("unsafe-no-fsync")
	cp.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		ControlPlane: envtest.ControlPlane{
			Etcd:      etcd,
			APIServer: api,
		},
	}
	cfg, err := cp.env.Start()
	if err != nil {
		_ = cp.env.Stop()
		cp.closeLogs()
		return nil, nil, fmt.Errorf("starting kube-apiserver and etcd from %s (their logs are in %s): %w", assets, dirs.logs, err)
	}
	return cp, cfg, nil
}

func (cp *controlPlane) openLog(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening log %s: %w", path, err)
	}
	cp.logs = append(cp.logs, f)
	return f, nil
}

func (cp *controlPlane) closeLogs() {
	for _, f := range cp.logs {
		_ = f.Close()
	}
}

// stop stops kube-apiserver, then etcd, waiting for both processes to exit.
func (cp *controlPlane) stop() error {
	defer cp.closeLogs()
	if err := cp.env.Stop(); err != nil {
		return fmt.Errorf("stopping kube-apiserver and etcd: %w", err)
	}
	return nil
}

// writeKubeconfig writes a kubeconfig for cfg whose one context is "chainsync-local", in
// namespace (empty for "default").
func writeKubeconfig(path string, cfg *rest.Config, namespace string) error {
	const name = "chainsync-local"
	kc := clientcmdapi.NewConfig()
	kc.Clusters[name] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData}
	kc.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name, Namespace: namespace}
	kc.CurrentContext = name
	raw, err := clientcmd.Write(*kc)
	if err != nil {
		return fmt.Errorf("encoding the kubeconfig: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating the kubeconfig's directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return fmt.Errorf("writing the kubeconfig %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing the kubeconfig %s: %w", path, err)
	}
	return nil
}
