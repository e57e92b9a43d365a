// Command chainsync is the chainsync operator, its sync Jobs' entrypoint and its local tools;
// installed (or linked) as kubectl-chainsync, it is the kubectl plugin.
package main

import (
	"os"
	"path/filepath"

	"github.com/chainsync/chainsync/internal/cli"
)

func main() {
	if err := cli.Execute(filepath.Base(os.Args[0]), os.Args[1:]); err != nil {
		os.Exit(1)
	}
}
