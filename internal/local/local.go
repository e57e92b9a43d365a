// Package local runs chainsync on one machine with nothing installed: kube-apiserver and etcd
// (the control plane the tests use), the operator and the local Job executor in this process, and
// a demo to watch. Its data directory persists between runs; see Run.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/manager"
	chainsyncscheme "github.com/chainsync/chainsync/internal/scheme"
	"github.com/chainsync/chainsync/internal/slapd"
	"github.com/chainsync/chainsync/internal/testenv"
	"github.com/chainsync/chainsync/internal/webhook"
)

// Options configure Run.
type Options struct {
	// DataDir keeps etcd's data, the claims' files (record stores included), the logs and the
	// kubeconfig between runs. Required.
	DataDir string
	// Fresh wipes DataDir first. Only a directory chainsync local made (or an empty one) is wiped.
	Fresh bool
	// Assets is the directory of kube-apiserver and etcd; empty means KUBEBUILDER_ASSETS or
	// what hack/envtest.sh builds, which needs the working directory inside the repository.
	Assets string
	// Kubeconfig is where the cluster-admin kubeconfig is written; empty means
	// <DataDir>/kubeconfig.
	Kubeconfig string
	// Port is the API server's port; 0 picks a free one.
	Port int
	// Demo applies the demo on the first start of DataDir.
	Demo bool
	// Runner runs the cycle Jobs' containers (a chainsync process or an in-process call).
	Runner executor.Runner
	// MaxConcurrentPods bounds the cycle pods running at once.
	MaxConcurrentPods int
	// Out receives the progress: a screen redrawn in place when Screen is set, else one line
	// per change.
	Out io.Writer
	// Screen, when set, returns the terminal's columns and rows, and Out is redrawn in place.
	Screen func() (int, int)
	// Log receives the operator's and the executor's logs.
	Log logr.Logger
	// WebhookAddr serves SyncReceivers; empty means 127.0.0.1:9292, or any free port when that
	// one is taken, and "0" serves none.
	WebhookAddr string
}

// layout names the files of a data directory.
type layout struct {
	root        string
	marker      string // says the directory is ours, so --fresh may wipe it
	etcd        string
	apiserver   string // certificates, made afresh at every start
	volumes     string // the executor's DataDir: claims and pods
	logs        string
	kubeconfig  string
	demoApplied string
}

func newLayout(root string) layout {
	return layout{
		root:        root,
		marker:      filepath.Join(root, ".chainsync-local"),
		etcd:        filepath.Join(root, "etcd"),
		apiserver:   filepath.Join(root, "apiserver"),
		volumes:     filepath.Join(root, "volumes"),
		logs:        filepath.Join(root, "logs"),
		kubeconfig:  filepath.Join(root, "kubeconfig"),
		demoApplied: filepath.Join(root, "demo-applied"),
	}
}

// LogFile is where Run's caller should send the operator's logs: they would scroll the
// progress off the screen.
func LogFile(dataDir string) string {
	return filepath.Join(newLayout(dataDir).logs, "chainsync.log")
}

// Prepare creates (or with fresh, wipes and recreates) the data directory.
func Prepare(dataDir string, fresh bool) error {
	dirs := newLayout(dataDir)
	if fresh {
		if err := wipe(dirs); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dirs.logs, 0o700); err != nil {
		return fmt.Errorf("creating the data directory %s: %w", dataDir, err)
	}
	if err := os.WriteFile(dirs.marker, []byte("chainsync local data directory\n"), 0o600); err != nil {
		return fmt.Errorf("marking the data directory %s: %w", dataDir, err)
	}
	return nil
}

// wipe removes a data directory, refusing one that chainsync local did not make.
func wipe(dirs layout) error {
	entries, err := os.ReadDir(dirs.root)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading the data directory %s: %w", dirs.root, err)
	}
	if _, err := os.Stat(dirs.marker); err != nil && len(entries) > 0 {
		return fmt.Errorf("not wiping %s: it has files but is not a chainsync local data directory", dirs.root)
	}
	if err := os.RemoveAll(dirs.root); err != nil {
		return fmt.Errorf("wiping the data directory %s: %w", dirs.root, err)
	}
	return nil
}

// Run starts the control plane on the data directory, installs or updates the CRDs, starts the
// operator with the local Job executor, applies the demo on a new data directory (with slapd
// installed, it starts the demo's directory and application, and applies the chain through them
// on the first start that has them), and shows the users' progress until ctx ends. It then stops
// the operator, the executor and its running cycles, the directory and application, kube-apiserver
// and etcd, and returns once all of them have.
func Run(ctx context.Context, opts Options) (err error) {
	log := opts.Log
	if opts.DataDir == "" || opts.Runner == nil || opts.Out == nil {
		return errors.New("local: DataDir, Runner and Out are required")
	}
	dirs := newLayout(opts.DataDir)
	if opts.Kubeconfig == "" {
		opts.Kubeconfig = dirs.kubeconfig
	}
	if err := Prepare(opts.DataDir, opts.Fresh); err != nil {
		return err
	}
	assets, err := resolveAssets(opts.Assets)
	if err != nil {
		return err
	}

	if err := stopLeftovers(dirs, log); err != nil {
		return err
	}
	started := time.Now()
	cp, cfg, err := startControlPlane(dirs, assets, opts.Port)
	if err != nil {
		return err
	}
	defer func() {
		log.Info("Stopping kube-apiserver and etcd")
		err = errors.Join(err, cp.stop())
	}()
	namespace := ""
	if opts.Demo {
		namespace = DemoNamespace
	}
	if err := writeKubeconfig(opts.Kubeconfig, cfg, namespace); err != nil {
		return err
	}
	scheme, err := chainsyncscheme.New()
	if err != nil {
		return err
	}
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		return fmt.Errorf("adding CRDs to the scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return fmt.Errorf("creating the API client: %w", err)
	}
	if err := installBase(ctx, c); err != nil {
		return err
	}
	demoApplied, directoryApplied := false, false
	var directory *directoryDemo
	var slapdBin string
	var directoryErr error
	if opts.Demo {
		if demoApplied, err = applyDemo(ctx, c, dirs); err != nil {
			return err
		}
		// The directory and the application are the demo's: a failure to start them leaves the
		// rest of the demo running, and says why.
		if slapdBin = slapd.FindInstalled(); slapdBin != "" {
			if directory, directoryErr = startDirectoryDemo(opts.DataDir, slapdBin); directoryErr != nil {
				log.Error(directoryErr, "Not running the directory demo")
			} else {
				defer func() {
					log.Info("Stopping the demo's slapd and SCIM application")
					err = errors.Join(err, directory.stop())
				}()
				if directoryApplied, err = applyDirectoryDemo(ctx, c, opts.DataDir, directory); err != nil {
					return err
				}
			}
		}
	}
	log.Info("Control plane ready", "took", time.Since(started).Round(time.Millisecond), "server", cfg.Host,
		"demoApplied", demoApplied, "directoryDemoApplied", directoryApplied)

	mgr, err := manager.New(cfg, manager.Options{MetricsAddr: "0", ProbeAddr: "0"})
	if err != nil {
		return err
	}
	mgrCtx, stopManager := context.WithCancel(context.WithoutCancel(ctx))
	defer stopManager()
	if err := controllers.SetupWithManager(mgrCtx, mgr, controllers.Options{
		Jobs: controllers.CycleJobBuilder{Image: "chainsync:local"},
	}); err != nil {
		return err
	}
	webhookAddr := opts.WebhookAddr
	if webhookAddr == "" {
		webhookAddr = loopbackAddr(defaultWebhookPort)
	}
	if err := webhook.SetupWithManager(mgrCtx, mgr, webhook.Options{Addr: webhookAddr}); err != nil {
		return err
	}
	ex, err := executor.New(cfg, executor.Options{DataDir: dirs.volumes, Runner: opts.Runner,
		MaxConcurrentPods: opts.MaxConcurrentPods, Logger: log.WithName("executor")})
	if err != nil {
		return err
	}
	if err := ex.SetupWithManager(mgr); err != nil {
		return err
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()

	header := []string{
		fmt.Sprintf("chainsync local: API server %s. Ctrl-C stops everything; the data is kept.", cfg.Host),
		"  export KUBECONFIG=" + opts.Kubeconfig,
		"  data:  " + opts.DataDir + " (logs in " + dirs.logs + ")",
	}
	if opts.Demo {
		header = append(header, "  demo:  kubectl get syncusers,onboardingchains -n "+DemoNamespace+
			"; chainsync records --store "+DemoStoreDir(opts.DataDir)+" users")
		header = append(header, directoryNote(opts.DataDir, directory, slapdBin, directoryErr)...)
		header = append(header, webhookNote(ctx, c, webhookAddr)...)
	}
	var d display
	if opts.Screen != nil {
		fmt.Fprint(opts.Out, "\x1b[H\x1b[2J")
		d = &screen{w: opts.Out, header: header, size: opts.Screen}
	} else {
		for _, l := range header {
			fmt.Fprintln(opts.Out, l)
		}
		d = newLineLog(opts.Out)
	}
	progressCtx, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		if mgr.GetCache().WaitForCacheSync(progressCtx) {
			showProgress(progressCtx, mgr.GetClient(), d, time.Second, func(err error) {
				log.Error(err, "Reading progress")
			})
		}
	}()

	select {
	case <-ctx.Done():
		stopProgress()
		<-progressDone
		stopping := "Stopping the operator, the executor and its cycles, kube-apiserver and etcd"
		if directory != nil {
			stopping = "Stopping the operator, the executor and its cycles, the demo's slapd and SCIM application, kube-apiserver and etcd"
		}
		fmt.Fprintln(opts.Out, stopping)
		log.Info("Stopping the operator and the executor")
		stopManager()
		if err := <-mgrDone; err != nil {
			return fmt.Errorf("stopping the operator: %w", err)
		}
		return nil
	case err := <-mgrDone:
		stopProgress()
		<-progressDone
		return fmt.Errorf("the operator stopped: %w", err)
	}
}

// resolveAssets finds kube-apiserver and etcd: the given directory, else KUBEBUILDER_ASSETS or
// hack/envtest.sh's build, through testenv.
func resolveAssets(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	root, err := testenv.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("no kube-apiserver and etcd: pass --assets DIR (or set KUBEBUILDER_ASSETS), "+
			"or run from the chainsync repository so hack/envtest.sh can build them: %w", err)
	}
	return testenv.Assets(root)
}
