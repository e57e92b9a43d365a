package cycle

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/testenv"
)

// A Job reads the users it cycles with one List when it holds a good share of the policy's users,
// and with a Get each when it holds a few among many: either way it gets exactly its users still
// on the policy, never one deleted or moved since the Job was launched.
func TestAJobReadsItsUsersStillOnThePolicy(t *testing.T) {
	g := NewWithT(t)
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	c := env.Client
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)

	const ns = "read-users"
	g.Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	place := func(name, policy string) {
		u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: name + "@example.com"},
				PolicyRef: &syncv1alpha1.PolicyReference{Name: policy}}}
		g.Expect(c.Create(ctx, u)).To(Succeed())
		u.Status.Policy = policy
		g.Expect(c.Status().Update(ctx, u)).To(Succeed())
	}
	place("ada", "crm")
	place("grace", "crm")
	place("moved", "mailbox") // Was on crm when the Job was launched.
	for i := range 40 {
		place("other"+string(rune('a'+i%26))+string(rune('a'+i/26)), "crm")
	}

	r := &Runner{Cycle: jobargs.Cycle{Namespace: ns}, Client: c}
	names := []string{"ada", "grace", "moved", "deleted"}
	for _, assigned := range []int32{4, 42} { // A List for a Job of 4 users among 4, a Get each among 42.
		policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "crm"},
			Status: syncv1alpha1.SyncPolicyStatus{Users: syncv1alpha1.UserCounts{Assigned: assigned}}}
		users, err := r.readUsers(ctx, policy, names)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(users).To(HaveLen(2), "assigned %d", assigned)
		g.Expect(users).To(HaveKey("ada"))
		g.Expect(users).To(HaveKey("grace"))
		g.Expect(users["ada"].Spec.Identity.Email).To(Equal("ada@example.com"))
	}
}
