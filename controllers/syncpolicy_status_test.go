package controllers

import (
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/jobargs"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
	"github.com/chainsync/chainsync/internal/userstatus"
)

func policyUser(name string, last *syncv1alpha1.CycleResult, ann map[string]string) syncv1alpha1.SyncUser {
	u := syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Annotations: ann,
		CreationTimestamp: *fx.At(-60)}}
	userstatus.MoveTo(&u.Status, userstatus.Placement{Policy: "p"}, *fx.At(-30))
	u.Status.LastCycle = last
	return u
}

func TestPlanCyclesBatchesDueUsersAndSkipsRunningOnes(t *testing.T) {
	g := NewWithT(t)
	policy := fx.HourlyPolicy()
	sched, _ := userstatus.ParseSchedule(policy.Spec)
	users := []syncv1alpha1.SyncUser{
		policyUser("e", nil, nil), policyUser("a", nil, nil), policyUser("c", nil, nil),
		policyUser("b", nil, nil), policyUser("d", fx.Cycle("p", -20, -10), nil),
	}
	world := jobWorld{running: map[string]bool{"b": true}, failedEnds: map[string][]time.Time{}}
	plan := planCycles(sched, policy, pointers(users), world, "", fx.T0)

	var names []string
	for _, d := range plan.due {
		names = append(names, d.user)
	}
	g.Expect(names).To(Equal([]string{"a", "c", "e"}), "due users, sorted; b runs already and d is not due")
	g.Expect(plan.next).To(BeTemporally(">=", fx.At(50).Time), "d is due an hour after its cycle")
	g.Expect(batchCycles(plan.due, 2)).To(HaveLen(2))
}

func TestCycleJobNamesAreDeterministic(t *testing.T) {
	g := NewWithT(t)
	a := cycleJobName("hr-import", []string{"ada@new:1", "bob@new:1"})
	g.Expect(a).To(Equal(cycleJobName("hr-import", []string{"ada@new:1", "bob@new:1"})))
	g.Expect(a).NotTo(Equal(cycleJobName("hr-import", []string{"ada@at:2", "bob@new:1"})), "a later cycle of the same users is a new Job")
	long := cycleJobName("a-policy-name-that-is-much-longer-than-a-job-name-may-be-in-a-label", []string{"x"})
	g.Expect(len(long)).To(BeNumerically("<=", 63))
}

func TestCycleJobRunsLeastPrivilegedAndSpreadsUsers(t *testing.T) {
	g := NewWithT(t)
	policy := fx.HourlyPolicy()
	policy.Spec.Source = syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector,
		CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{ClaimName: "exports", Path: "hr"}}}
	policy.Spec.Target = syncv1alpha1.Endpoint{Name: "dir", Connector: syncv1alpha1.SQLiteConnector,
		SQLite: &syncv1alpha1.SQLiteEndpoint{File: syncv1alpha1.VolumePath{Path: "dir.db"}}}
	job := CycleJobBuilder{Image: "chainsync:test"}.CycleJob(policy, "p-abc", []string{"u1", "u2", "u3"})

	g.Expect(*job.Spec.CompletionMode).To(Equal(batchv1.IndexedCompletion))
	g.Expect(*job.Spec.Completions).To(BeEquivalentTo(3), "never more pods than users")
	g.Expect(*job.Spec.Parallelism).To(BeEquivalentTo(3))
	g.Expect(job.Labels).To(HaveKeyWithValue(syncv1alpha1.PolicyLabel, "p"))
	g.Expect(jobUsers(job)).To(Equal([]string{"u1", "u2", "u3"}))

	pod := job.Spec.Template.Spec
	g.Expect(pod.ServiceAccountName).To(Equal("chainsync-cycle"))
	g.Expect(pod.SecurityContext.RunAsNonRoot).To(HaveValue(BeTrue()))
	g.Expect(pod.SecurityContext.SeccompProfile.Type).To(Equal(corev1.SeccompProfileTypeRuntimeDefault))
	c := pod.Containers[0]
	g.Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()))
	g.Expect(c.SecurityContext.AllowPrivilegeEscalation).To(HaveValue(BeFalse()))
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	args, err := jobargs.ParseCycle(c.Args)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(args.Store).To(Equal("/chainsync/volumes/records/chainsync"))
	g.Expect(args.Shards).To(Equal(3))
	g.Expect(args.Concurrency).To(Equal(3))

	var claims []string
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims = append(claims, v.PersistentVolumeClaim.ClaimName)
		}
	}
	g.Expect(claims).To(Equal([]string{"exports", "records"}), "the store's claim and the csv export's, once each")
}

func TestObserveJobs(t *testing.T) {
	g := NewWithT(t)
	job := func(name string, users []string, cond batchv1.JobConditionType, ended int) batchv1.Job {
		j := CycleJobBuilder{}.CycleJob(fx.HourlyPolicy(), name, users)
		if cond != "" {
			j.Status.Conditions = []batchv1.JobCondition{{Type: cond, Status: corev1.ConditionTrue, LastTransitionTime: *fx.At(ended)}}
			j.Status.CompletionTime = ptr.To(*fx.At(ended))
		}
		return *j
	}
	w := observeJobs([]batchv1.Job{
		job("j2", []string{"a", "b"}, "", 0),
		job("j1", []string{"c"}, batchv1.JobFailed, -5),
		job("j0", []string{"c", "d"}, batchv1.JobFailed, -9),
		job("j3", []string{"e"}, batchv1.JobComplete, -1),
	})
	g.Expect(w.active).To(Equal([]string{"j2"}))
	g.Expect(w.running).To(Equal(map[string]bool{"a": true, "b": true}))
	g.Expect(w.failedEnds).To(Equal(map[string][]time.Time{"c": {fx.At(-5).Time, fx.At(-9).Time}, "d": {fx.At(-9).Time}}))
}

func TestPlanCyclesGathersBatches(t *testing.T) {
	policy := fx.HourlyPolicy()
	policy.Spec.JobTemplate.UsersPerJob = 3
	sched, _ := userstatus.ParseSchedule(policy.Spec)
	now := fx.T0
	placedAgo := func(name string, ago time.Duration) syncv1alpha1.SyncUser {
		u := policyUser(name, nil, nil)
		u.Status.History[0].EnteredTime = &metav1.Time{Time: now.Add(-ago)}
		return u
	}
	scheduledIn := func(name string, in time.Duration) syncv1alpha1.SyncUser {
		// Synced an hour before it is due again (no jitter for these UIDs matters: see below).
		u := policyUser(name, fx.Cycle("p", -200, -100), nil)
		end := now.Add(in).Add(-time.Hour)
		u.Status.LastCycle.StartTime = &metav1.Time{Time: end}
		u.Status.LastCycle.CompletionTime = &metav1.Time{Time: end}
		u.UID = "same-jitter"
		return u
	}
	jitter := sched.After(now, now, "same-jitter").Sub(now.Add(time.Hour))
	cases := []struct {
		name     string
		users    []syncv1alpha1.SyncUser
		wantDue  []string
		wantNext time.Time
	}{
		{"a user placed a moment ago waits for company", []syncv1alpha1.SyncUser{placedAgo("a", time.Second)}, nil, now.Add(time.Second)},
		{"after the gather delay it goes alone", []syncv1alpha1.SyncUser{placedAgo("a", 3*time.Second)}, []string{"a"}, time.Time{}},
		{"a full batch goes at once", []syncv1alpha1.SyncUser{placedAgo("a", 0), placedAgo("b", 0), placedAgo("c", 0)}, []string{"a", "b", "c"}, time.Time{}},
		{"a requested cycle goes at once", []syncv1alpha1.SyncUser{policyUser("a", fx.Cycle("p", -20, -10), map[string]string{syncv1alpha1.RequestedAtAnnotation: "now"})}, []string{"a"}, time.Time{}},
		{"a user due soon rides along", []syncv1alpha1.SyncUser{placedAgo("a", time.Minute), scheduledIn("b", 20*time.Second-jitter)}, []string{"a", "b"}, time.Time{}},
		{"but not one due much later", []syncv1alpha1.SyncUser{placedAgo("a", time.Minute), scheduledIn("b", 10*time.Minute-jitter)}, []string{"a"}, now.Add(10 * time.Minute)},
		{"early riders alone wait for their turn", []syncv1alpha1.SyncUser{scheduledIn("b", 20*time.Second-jitter)}, nil, now.Add(20 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			plan := planCycles(sched, policy, pointers(tc.users), jobWorld{running: map[string]bool{}, failedEnds: map[string][]time.Time{}}, "", now)
			g.Expect(dueNames(plan)).To(Equal(tc.wantDue))
			if !tc.wantNext.IsZero() {
				g.Expect(plan.next).To(BeTemporally("~", tc.wantNext, time.Second))
			}
		})
	}

	t.Run("a policy's own gather window holds the batch longer", func(t *testing.T) {
		g := NewWithT(t)
		policy := policy.DeepCopy()
		policy.Spec.JobTemplate.GatherWindow = "30s"
		sched, err := userstatus.ParseSchedule(policy.Spec)
		g.Expect(err).NotTo(HaveOccurred())
		world := jobWorld{running: map[string]bool{}, failedEnds: map[string][]time.Time{}}
		plan := planCycles(sched, policy, pointers([]syncv1alpha1.SyncUser{placedAgo("a", 10*time.Second), placedAgo("b", time.Second)}), world, "", now)
		g.Expect(dueNames(plan)).To(BeEmpty(), "10s into a 30s window, two users wait for company")
		g.Expect(plan.next).To(BeTemporally("~", now.Add(20*time.Second), time.Second), "and look again when the first one's window ends")
		plan = planCycles(sched, policy, pointers([]syncv1alpha1.SyncUser{placedAgo("a", 31*time.Second), placedAgo("b", time.Second)}), world, "", now)
		g.Expect(dueNames(plan)).To(Equal([]string{"a", "b"}), "past the window, everyone due goes in one Job")
	})
}

func dueNames(plan cyclePlan) []string {
	var due []string
	for _, d := range plan.due {
		due = append(due, d.user)
	}
	return due
}

func TestAFailedJobKeepsItsLastPodsWords(t *testing.T) {
	g := NewWithT(t)
	ended := func(name string, min int, code int32, reason, msg string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{{
			State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason, Message: msg, FinishedAt: *fx.At(min)}}}}}}
	}
	g.Expect(lastPodMessage(nil)).To(BeEmpty())
	g.Expect(lastPodMessage([]corev1.Pod{
		ended("crm-1-a", 1, 1, "Error", "reading SyncPolicy: syncpolicies.sync.chainsync.dev \"crm\" is forbidden\n"),
		ended("crm-1-b", 3, 137, "OOMKilled", ""),
		ended("crm-1-c", 5, 0, "Completed", "all done"),
	})).To(Equal("pod crm-1-b exited 137 (OOMKilled)"), "the pod that failed last; a success says nothing")
	g.Expect(lastPodMessage([]corev1.Pod{ended("p", 1, 1, "Error", strings.Repeat("x", 5000)+" the end")})).To(
		And(HaveLen(1027), HaveSuffix("the end")), "bounded, keeping the end, where the error is")
}

func TestSummarizeUsersReadsEachUserOnce(t *testing.T) {
	g := NewWithT(t)
	users := []syncv1alpha1.SyncUser{
		policyUser("new", nil, nil),
		policyUser("clean", fx.Cycle("p", -20, -10, func(c *syncv1alpha1.CycleResult) { c.RejectedRows = 2 }), nil),
		policyUser("failing", fx.Cycle("p", -20, -10, func(c *syncv1alpha1.CycleResult) { c.Items.Errors, c.RejectedRows = 1, 3 }), nil),
		policyUser("elsewhere", fx.Cycle("other", -20, -10, func(c *syncv1alpha1.CycleResult) { c.RejectedRows = 9 }), nil),
	}
	s := summarizeUsers(pointers(users), jobWorld{running: map[string]bool{"new": true}})
	g.Expect(s.counts).To(Equal(syncv1alpha1.UserCounts{Assigned: 4, Syncing: 1, Synced: 1, Failing: 1}))
	g.Expect(s.waiting).To(Equal(2), "no cycle on this policy yet: new, and the one whose last cycle was elsewhere")
	g.Expect(s.rejectedRows).To(BeEquivalentTo(3), "the most any user's cycle on this policy saw; another policy's export is not this one's")
}

func TestRejectedJobsAreRetriedWithBackoff(t *testing.T) {
	g := NewWithT(t)
	now := fx.At(0).Time
	policy := &syncv1alpha1.SyncPolicy{}
	g.Expect(jobRejectedRetryDelay(policy, now)).To(Equal(10*time.Second), "first refusal")
	stalledSince := func(min int) {
		policy.Status.Conditions = []metav1.Condition{{Type: syncv1alpha1.StalledCondition, Status: metav1.ConditionTrue,
			Reason: syncv1alpha1.SyncPolicyJobRejectedReason, LastTransitionTime: *fx.At(min)}}
	}
	stalledSince(-2)
	g.Expect(jobRejectedRetryDelay(policy, now)).To(Equal(2*time.Minute), "as long again as it has been refused")
	stalledSince(-300)
	g.Expect(jobRejectedRetryDelay(policy, now)).To(Equal(10*time.Minute), "capped")
	policy.Status.Conditions[0].Reason = syncv1alpha1.SyncPolicySecretNotFoundReason
	g.Expect(jobRejectedRetryDelay(policy, now)).To(Equal(10*time.Second), "stalled for another reason: a first refusal")
}
