package manager_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
)

func TestManagerServesProbesAndMetricsAndLeadsAlone(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })

	probes, metrics := freeAddr(t), freeAddr(t)
	mgr, err := manager.New(env.Config, manager.Options{
		MetricsAddr:             metrics,
		ProbeAddr:               probes,
		LeaderElection:          true,
		LeaderElectionNamespace: "default",
	})
	g.Expect(err).NotTo(HaveOccurred())

	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()

	g.Eventually(func() int { return status(fmt.Sprintf("http://%s/healthz", probes)) }, 20*time.Second).Should(Equal(http.StatusOK))
	g.Eventually(func() int { return status(fmt.Sprintf("http://%s/readyz", probes)) }, 20*time.Second).Should(Equal(http.StatusOK))
	g.Eventually(func() string { return body(fmt.Sprintf("http://%s/metrics", metrics)) }, 20*time.Second).
		Should(ContainSubstring("leader_election_master_status"))

	var lease coordinationv1.Lease
	g.Eventually(func() error {
		return env.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: manager.LeaderElectionID}, &lease)
	}, 20*time.Second).Should(Succeed())
	g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())

	cancel()
	g.Eventually(stopped, 20*time.Second).Should(Receive(BeNil()), "the manager did not stop cleanly")
	// The Lease is released on a clean stop, so a new replica takes over at once.
	g.Expect(env.Client.Get(context.Background(), client.ObjectKeyFromObject(&lease), &lease)).To(Succeed())
	g.Expect(lease.Spec.HolderIdentity).To(SatisfyAny(BeNil(), HaveValue(BeEmpty())))
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func status(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	return resp.StatusCode
}

func body(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
