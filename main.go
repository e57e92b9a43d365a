// Command chainsync is the chainsync operator, its sync Jobs' entrypoint and its local tools.
package main

import (
	"os"

	"github.com/chainsync/chainsync/internal/cli"
)

func main() {
	if err := cli.NewRootCommand().Execute(); err != nil {
		os.Exit(1)
	}
}
