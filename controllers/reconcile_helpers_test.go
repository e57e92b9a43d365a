package controllers

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/workqueue"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
)

func TestObservedGenerationWaitsForAFinishedReconcile(t *testing.T) {
	g := NewWithT(t)
	g.Expect(reconciled(nil)).To(BeTrue())
	g.Expect(reconciled(reconcile.TerminalError(errors.New("spec.schedule.cron: bad")))).To(BeTrue(),
		"a spec that cannot work is a finished reconcile: Stalled, for this generation")
	g.Expect(reconciled(fmt.Errorf("listing users: %w", errors.New("connection refused")))).To(BeFalse(),
		"a transient error is retried; the status must not claim the generation yet")
}

func TestMarkStalledReadsAsFailedToKstatus(t *testing.T) {
	g := NewWithT(t)
	conds := []metav1.Condition{{Type: syncv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue, Reason: "Progressing"}}
	kstatus.MarkStalled(&conds, 3, "SecretNotFound", `Secret "crm-db" not found`)
	g.Expect(meta.FindStatusCondition(conds, syncv1alpha1.ReconcilingCondition)).To(BeNil())
	for _, c := range []struct {
		t      string
		status metav1.ConditionStatus
	}{{syncv1alpha1.StalledCondition, metav1.ConditionTrue}, {syncv1alpha1.ReadyCondition, metav1.ConditionFalse}} {
		got := meta.FindStatusCondition(conds, c.t)
		g.Expect(got).NotTo(BeNil())
		g.Expect(got.Status).To(Equal(c.status))
		g.Expect(got.Reason).To(Equal("SecretNotFound"))
		g.Expect(got.ObservedGeneration).To(BeEquivalentTo(3))
	}
}

func TestUserEventsForOnePolicyWithinTheWindowAreOneReconcile(t *testing.T) {
	g := NewWithT(t)
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	h := enqueueCoalesced(policyOfUser, 200*time.Millisecond)
	user := func(name, policy string) *syncv1alpha1.SyncUser {
		return &syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			Status: syncv1alpha1.SyncUserStatus{Policy: policy}}
	}
	ctx := context.Background()
	for i := range 100 {
		u := user(fmt.Sprintf("u%d", i), "crm")
		h.Update(ctx, event.UpdateEvent{ObjectOld: u, ObjectNew: u}, q)
	}
	// A user moving from one policy to another concerns both.
	h.Update(ctx, event.UpdateEvent{ObjectOld: user("mover", "crm"), ObjectNew: user("mover", "mailbox")}, q)
	g.Expect(q.Len()).To(BeZero(), "nothing is handled before the window ends")
	g.Eventually(q.Len).WithTimeout(2 * time.Second).Should(Equal(2))
	var got []string
	for range 2 {
		req, _ := q.Get()
		got = append(got, req.Name)
		q.Done(req)
	}
	g.Expect(got).To(ConsistOf("crm", "mailbox"), "101 user events, one reconcile per policy")
}
