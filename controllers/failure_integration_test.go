package controllers_test

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// warningsAbout returns the notes of the Warning events with reason about the named object.
func warningsAbout(g Gomega, t *testing.T, ns, kind, name, reason string) []string {
	var events eventsv1.EventList
	g.Expect(k8s.List(ctx(t), &events, client.InNamespace(ns))).To(Succeed())
	var notes []string
	for _, e := range events.Items {
		if e.Type == corev1.EventTypeWarning && e.Reason == reason && e.Regarding.Kind == kind && e.Regarding.Name == name {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

func TestAJobTheAPIServerRefusesStallsThePolicyAndItsUsers(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(1)
	hrExport(t, ns, [][5]string{ada})
	directory(t, ns)
	// A memory limit below its request: admitted in the policy, refused by the API server in a Job.
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hr", func(p *syncv1alpha1.SyncPolicy) {
		p.Spec.JobTemplate.Resources = corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		}
	}))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "hr"))).To(Succeed())

	p := eventuallyPolicyStalled(t, ns, "hr", syncv1alpha1.SyncPolicyJobRejectedReason)
	g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionFalse))
	g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).Message).To(
		ContainSubstring("must be less than or equal to memory limit"), "the API server's own words")
	u := eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		stalled := findCondition(u.Status.Conditions, syncv1alpha1.StalledCondition)
		g.Expect(stalled).NotTo(BeNil(), "not waiting for the first cycle for ever")
		g.Expect(stalled.Reason).To(Equal(syncv1alpha1.SyncPolicyJobRejectedReason))
	})
	g.Expect(findCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition).Message).To(ContainSubstring("SyncPolicy hr is stalled"))
	g.Eventually(func(g Gomega) {
		g.Expect(warningsAbout(g, t, ns, "SyncPolicy", "hr", syncv1alpha1.SyncPolicyJobRejectedReason)).NotTo(BeEmpty())
	}, wait).Should(Succeed())

	// Backing off: a rejected policy is not retried in a hot loop. The first retry is 10s away.
	before := p.Status.Conditions
	g.Consistently(func(g Gomega) {
		g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(p), p)).To(Succeed())
		g.Expect(findCondition(p.Status.Conditions, syncv1alpha1.StalledCondition).LastTransitionTime).To(
			Equal(findCondition(before, syncv1alpha1.StalledCondition).LastTransitionTime))
	}, 3*time.Second).Should(Succeed())

	// Fixed in the spec: the policy launches at once, and the user syncs.
	g.Expect(k8s.Get(ctx(t), client.ObjectKeyFromObject(p), p)).To(Succeed())
	p.Spec.JobTemplate.Resources.Limits[corev1.ResourceMemory] = resource.MustParse("1Gi")
	g.Expect(k8s.Update(ctx(t), p)).To(Succeed())
	eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		g.Expect(findCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition).Status).To(Equal(metav1.ConditionTrue))
		g.Expect(findCondition(u.Status.Conditions, syncv1alpha1.StalledCondition)).To(BeNil())
	})
}

func TestAJobThatFailsShowsOnItsUsersAndIsRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	g := NewWithT(t)
	ns := namespace(t)
	ada := person(1)
	hrExport(t, ns, [][5]string{ada})
	directory(t, ns)
	// The cycle's RoleBinding is missing: its pods start, and are refused by the API server.
	g.Expect(k8s.Delete(ctx(t), &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), hrPolicy(ns, "hr", func(p *syncv1alpha1.SyncPolicy) {
		p.Spec.JobTemplate.BackoffLimit = new(int32)
	}))).To(Succeed())
	g.Expect(k8s.Create(ctx(t), policyUser(ns, "ada", ada[1], "hr"))).To(Succeed())

	u := eventuallyUser(t, ns, "ada", func(g Gomega, u *syncv1alpha1.SyncUser) {
		ready := findCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition)
		g.Expect(ready).NotTo(BeNil())
		g.Expect(ready.Reason).To(Equal(syncv1alpha1.SyncUserJobFailedReason))
	})
	ready := findCondition(u.Status.Conditions, syncv1alpha1.ReadyCondition)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Message).To(ContainSubstring("BackoffLimitExceeded"))
	g.Expect(ready.Message).To(ContainSubstring("forbidden"), "the pod's own words")
	g.Expect(ready.Message).To(ContainSubstring("retried at"))
	g.Expect(findCondition(u.Status.Conditions, syncv1alpha1.ReconcilingCondition)).To(BeNil())
	g.Expect(u.Status.NextSyncTime).NotTo(BeNil())
	g.Eventually(func(g Gomega) {
		g.Expect(warningsAbout(g, t, ns, "SyncUser", "ada", syncv1alpha1.SyncUserJobFailedReason)).NotTo(BeEmpty())
	}, wait).Should(Succeed())

	// No hot loop: the failed Job is not replaced before its retry time, a minute on.
	g.Consistently(func(g Gomega) { g.Expect(policyJobs(g, t, ns, "hr")).To(HaveLen(1)) }, 5*time.Second).Should(Succeed())
}
