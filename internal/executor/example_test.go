package executor_test

import (
	"context"
	"fmt"
	"io"
	"os"

	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/chainsync/chainsync/internal/executor"
)

// An executor running each cycle in-process, next to the operator's controllers in one manager.
func ExampleExecutor_SetupWithManager() {
	cfg := ctrl.GetConfigOrDie()
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{})
	if err != nil {
		panic(err)
	}
	cycle := executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		// args is the container's command and args, with the pod's sandbox, under which its
		// files are, as chainsync's first flag: ["chainsync", "--fs-root=<sandbox>", "cycle", ...].
		// The API is reached with env["KUBECONFIG"], as the pod's service account.
		fmt.Fprintln(stdout, "running", args[2:], "in", args[1])
		return 0
	})
	exec, err := executor.New(mgr.GetConfig(), executor.Options{
		DataDir:    os.TempDir(),
		Runner:     cycle, // or executor.ProcessRunner{ChainsyncBinary: "bin/chainsync"}
		Namespaces: []string{"team-a"},
	})
	if err != nil {
		panic(err)
	}
	if err := exec.SetupWithManager(mgr); err != nil {
		panic(err)
	}
	_ = mgr.Start(ctrl.SetupSignalHandler())
}
