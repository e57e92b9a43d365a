package cycle

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/engine"
)

func TestPlanUserCycleTranslatesPolicyUserAndRequestsOnce(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	policy := &syncv1alpha1.SyncPolicy{ObjectMeta: metav1.ObjectMeta{Name: "crm"}, Spec: syncv1alpha1.SyncPolicySpec{
		Source: syncv1alpha1.Endpoint{Name: "hr"}, Target: syncv1alpha1.Endpoint{Name: "directory"},
		Direction: syncv1alpha1.TwoWay, ConflictResolution: syncv1alpha1.NewestWins,
		Deletes:  syncv1alpha1.DeletePolicy{Propagate: true, MaxCount: ptr.To[int32](50), MaxPercent: ptr.To[int32](10), MinCount: ptr.To[int32](5)},
		Schedule: syncv1alpha1.Schedule{CompleteEvery: "6h"},
		Entities: []syncv1alpha1.Entity{{Name: "people", MatchOn: []string{"email"},
			Fields: []syncv1alpha1.FieldMapping{{Source: "email", Target: "mail"}, {Source: "first", Target: "givenName"}}}},
	}}
	user := func(mutate func(*syncv1alpha1.SyncUser)) *syncv1alpha1.SyncUser {
		u := &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: "ada", UID: "uid-1"}, Spec: syncv1alpha1.SyncUserSpec{
			Identity: syncv1alpha1.UserIdentity{Email: "ada@example.com", Name: "Ada", Attributes: map[string]string{"dept": "R&D"}}}}
		u.Status.LastCompleteTime = &metav1.Time{Time: now.Add(-time.Hour)}
		if mutate != nil {
			mutate(u)
		}
		return u
	}
	g := NewWithT(t)
	uc := planUserCycle(policy, user(nil), "crm-1", now)
	g.Expect(uc.identity).To(Equal("ada@example.com"))
	g.Expect(uc.scope).To(Equal(connector.Scope{Email: "ada@example.com", Name: "Ada", Attributes: map[string]string{"dept": "R&D"}}))
	g.Expect(uc.policy).To(Equal(engine.Policy{Name: "crm", Source: engine.Endpoint{Name: "hr"}, Target: engine.Endpoint{Name: "directory"},
		Direction: engine.TwoWay, Conflict: engine.NewestWins,
		Deletes: engine.Deletes{Propagate: true, MaxCount: 50, MaxPercent: 10, MinCount: 5},
		Entities: []engine.Entity{{Name: "people", MatchOn: []string{"email"},
			Fields: []engine.FieldMapping{{Source: "email", Target: "mail"}, {Source: "first", Target: "givenName"}}}}}))
	g.Expect(uc.clear).To(BeNil())

	for _, tc := range []struct {
		name  string
		user  func(*syncv1alpha1.SyncUser)
		check func(Gomega, userCycle)
	}{
		{"a user known by name alone", func(u *syncv1alpha1.SyncUser) { u.Spec.Identity.Email = "" }, func(g Gomega, uc userCycle) {
			g.Expect(uc.identity).To(Equal("Ada"))
		}},
		{"completeEvery passed: a Complete cycle", func(u *syncv1alpha1.SyncUser) { u.Status.LastCompleteTime.Time = now.Add(-7 * time.Hour) },
			func(g Gomega, uc userCycle) { g.Expect(uc.policy.Complete).To(BeTrue()) }},
		{"approved deletes", func(u *syncv1alpha1.SyncUser) {
			u.Annotations = map[string]string{syncv1alpha1.ApproveDeletesAnnotation: "crm-0"}
		}, func(g Gomega, uc userCycle) { g.Expect(uc.policy.Deletes.ApprovedCycle).To(Equal("crm-0")) }},
		{"resync: Complete, items given up retried", func(u *syncv1alpha1.SyncUser) {
			u.Annotations = map[string]string{syncv1alpha1.ReinitAnnotation: "resync@2"}
		}, func(g Gomega, uc userCycle) {
			g.Expect(uc.policy.Complete).To(BeTrue())
			g.Expect(uc.policy.RetryGivenUp).To(BeTrue())
			g.Expect(uc.requests.reinit).To(Equal("resync@2"))
		}},
		{"clear: carried out by the runner, noted with the request it answers", func(u *syncv1alpha1.SyncUser) {
			u.Annotations = map[string]string{syncv1alpha1.ReinitAnnotation: "clear@2"}
			u.Status.LastHandledReinit = "clear"
		}, func(g Gomega, uc userCycle) {
			g.Expect(uc.clear).NotTo(BeNil())
			g.Expect(*uc.clear).To(And(HaveField("Request", "clear@2"), HaveField("After", "clear"), HaveField("Requester", "uid-1"), HaveField("CycleID", "crm-1")))
			g.Expect(uc.policy.Reinit).To(BeEmpty())
		}},
		{"a request already handled asks for nothing", func(u *syncv1alpha1.SyncUser) {
			u.Annotations = map[string]string{syncv1alpha1.ReinitAnnotation: "clear"}
			u.Status.LastHandledReinit = "clear"
		}, func(g Gomega, uc userCycle) {
			g.Expect(uc.clear).To(BeNil())
			g.Expect(uc.requests.reinit).To(BeEmpty())
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.check(NewWithT(t), planUserCycle(policy, user(tc.user), "crm-1", now)) })
	}

	t.Run("clear in a dry run: planned by the engine, nothing cleared", func(t *testing.T) {
		g := NewWithT(t)
		dry := policy.DeepCopy()
		dry.Spec.DryRun = true
		uc := planUserCycle(dry, user(func(u *syncv1alpha1.SyncUser) {
			u.Annotations = map[string]string{syncv1alpha1.ReinitAnnotation: "clear"}
		}), "crm-1", now)
		g.Expect(uc.clear).To(BeNil())
		g.Expect(uc.policy.Reinit).To(Equal([]string{"people"}))
	})

	t.Run("modes are named as the API names them", func(t *testing.T) {
		g := NewWithT(t)
		g.Expect(cycleMode(engine.Initial)).To(Equal(syncv1alpha1.InitialCycle))
		g.Expect(cycleMode(engine.Complete)).To(Equal(syncv1alpha1.CompleteCycle))
		g.Expect(cycleMode(engine.Incremental)).To(Equal(syncv1alpha1.IncrementalCycle))
	})
}
