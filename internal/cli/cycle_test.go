package cli

import (
	"context"
	"fmt"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/chainsync/chainsync/internal/jobargs"
)

func TestEachPodTakesItsShareOfUsersOnce(t *testing.T) {
	g := NewWithT(t)
	var users []string
	for i := range 10 {
		users = append(users, fmt.Sprintf("u%d", i))
	}
	seen := map[string]int{}
	for i := range 3 {
		mine, err := shareOf(users, 3, fmt.Sprint(i))
		g.Expect(err).NotTo(HaveOccurred())
		for _, u := range mine {
			seen[u]++
		}
	}
	g.Expect(seen).To(HaveLen(10))
	for u, n := range seen {
		g.Expect(n).To(Equal(1), u)
	}
	first, _ := shareOf(users, 3, "0")
	g.Expect(first).To(Equal([]string{"u0", "u3", "u6", "u9"}))

	all, err := shareOf(users, 1, "")
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(all).To(Equal(users), "a single pod takes everyone")

	_, err = shareOf(users, 3, "3")
	g.Expect(err).To(MatchError(ContainSubstring(`JOB_COMPLETION_INDEX "3" is not an index below --shards 3`)))
}

// The commands take what the operator's Jobs say, as the jobargs contract renders it, with the
// local executor's --fs-root ahead of the subcommand: without an API server to reach, the only
// complaint is about the API server.
func TestJobEntrypointsTakeTheirContractsArguments(t *testing.T) {
	cycleArgs := jobargs.Cycle{Namespace: "n", Policy: "p", Job: "p-123", Store: "/chainsync/volumes/records",
		Volumes: jobargs.VolumesRoot, Secrets: jobargs.SecretsRoot, AllowedDestinations: []string{"db:5432"},
		Concurrency: 2, Shards: 1, Users: []string{"ada", "bob"}}.Args()
	forgetArgs := jobargs.ForgetRecords{Namespace: "n", Job: "ada-forget", Store: "/chainsync/volumes/records",
		Users: []string{"ada"}}.Args()
	for _, args := range [][]string{cycleArgs, forgetArgs} {
		t.Run(args[0], func(t *testing.T) {
			g := NewWithT(t)
			var out strings.Builder
			code := Run(context.Background(), append([]string{"--fs-root=" + t.TempDir()}, args...), nil, &out, &out)
			g.Expect(code).To(Equal(1))
			g.Expect(out.String()).To(ContainSubstring("no KUBECONFIG and not in a pod"))
		})
	}

	g := NewWithT(t)
	var out strings.Builder
	g.Expect(Run(context.Background(), []string{"cycle", "--forget-records", "--", "ada"}, nil, &out, &out)).To(Equal(1))
	g.Expect(out.String()).To(ContainSubstring("unknown flag: --forget-records"), "deleting records is its own subcommand")
}
