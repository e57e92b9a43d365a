package controllers

import (
	"fmt"
	"sort"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/kstatus"
	"github.com/chainsync/chainsync/internal/userstatus"
)

// jobWorld is what a policy's Jobs say about its users.
type jobWorld struct {
	// active are the names of running Jobs, sorted.
	active []string
	// running users are in a running Job.
	running map[string]bool
	// failedEnds are when the failed Jobs holding each user ended.
	failedEnds map[string][]time.Time
}

func observeJobs(jobs []batchv1.Job) jobWorld {
	w := jobWorld{running: map[string]bool{}, failedEnds: map[string][]time.Time{}}
	for i := range jobs {
		job := &jobs[i]
		if forgetJobUser(job) != "" {
			continue
		}
		switch jobOutcome(job) {
		case jobRunning:
			w.active = append(w.active, job.Name)
			for _, u := range jobUsers(job) {
				w.running[u] = true
			}
		case jobFailed:
			ended := jobEnded(job).Time
			for _, u := range jobUsers(job) {
				w.failedEnds[u] = append(w.failedEnds[u], ended)
			}
		}
	}
	sort.Strings(w.active)
	return w
}

// userCycle is one user's due cycle.
type userCycle struct {
	user string
	due  userstatus.Due
}

// cyclePlan is what a policy should launch now, and when to look again.
type cyclePlan struct {
	// due users, not running, to cycle now, sorted by name.
	due []userCycle
	// next is when to look again: the earliest time a user becomes due, or a gathering batch
	// is launched; zero when no user will be due.
	next time.Time
}

// earlyWindow is how early a scheduled user may ride along in a Job launched for others: a
// tenth of the interval, at most 30 seconds, so users drift into shared Jobs.
func earlyWindow(sched userstatus.Schedule) time.Duration {
	return min(sched.Interval/10, 30*time.Second)
}

func planCycles(sched userstatus.Schedule, policy *syncv1alpha1.SyncPolicy, users []*syncv1alpha1.SyncUser,
	world jobWorld, policyRequest string, now time.Time) cyclePlan {
	var plan cyclePlan
	var candidates []userCycle
	launch := false
	var oldest time.Time
	soonest := func(t time.Time) {
		if plan.next.IsZero() || t.Before(plan.next) {
			plan.next = t
		}
	}
	for i := range users {
		u := users[i]
		if world.running[u.Name] || !u.DeletionTimestamp.IsZero() {
			continue
		}
		due, ok := userstatus.UserDue(sched, policy, u, policyRequest, world.failedEnds[u.Name], now)
		if !ok {
			continue
		}
		switch {
		case !due.At.After(now):
			candidates = append(candidates, userCycle{u.Name, due})
			launch = launch || due.Requested
			if oldest.IsZero() || due.At.Before(oldest) {
				oldest = due.At
			}
		case !due.At.After(now.Add(earlyWindow(sched))):
			candidates = append(candidates, userCycle{u.Name, due})
			soonest(due.At)
		default:
			soonest(due.At)
		}
	}
	if oldest.IsZero() {
		return cyclePlan{next: plan.next} // Nobody due yet; early riders wait for their turn.
	}
	launch = launch || len(candidates) >= int(max(1, policy.Spec.JobTemplate.UsersPerJob)) || !oldest.After(now.Add(-sched.Gather))
	if !launch {
		soonest(oldest.Add(sched.Gather))
		return plan
	}
	plan.due = candidates
	sort.Slice(plan.due, func(i, j int) bool { return plan.due[i].user < plan.due[j].user })
	return plan
}

// batchCycles splits the due users into Jobs of at most perJob users.
func batchCycles(due []userCycle, perJob int) [][]userCycle {
	perJob = max(1, perJob)
	var batches [][]userCycle
	for len(due) > 0 {
		n := min(perJob, len(due))
		batches = append(batches, due[:n])
		due = due[n:]
	}
	return batches
}

// userSummary is what the policy's status says of its users.
type userSummary struct {
	counts syncv1alpha1.UserCounts
	// waiting users have not finished a cycle on this policy yet.
	waiting int
	// rejectedRows is how many of the export's rows the users' latest cycles found to be no one's:
	// every user's read meets them all, so the most any user saw.
	rejectedRows int32
}

// summarizeUsers reads the policy's users once, from their last cycle on this policy.
func summarizeUsers(users []*syncv1alpha1.SyncUser, world jobWorld) userSummary {
	var s userSummary
	n := &s.counts
	for i := range users {
		u := users[i]
		n.Assigned++
		if world.running[u.Name] {
			n.Syncing++
		}
		// The users listed are on this policy, so a cycle on their current step is one of its.
		c := userstatus.CycleOnCurrentStep(&u.Status)
		switch {
		case c == nil:
			s.waiting++
			continue
		case userstatus.CycleClean(c):
			n.Synced++
		default:
			n.Failing++
		}
		s.rejectedRows = max(s.rejectedRows, c.RejectedRows)
	}
	return s
}

func setPolicyStalled(policy *syncv1alpha1.SyncPolicy, reason, message string) {
	kstatus.MarkStalled(&policy.Status.Conditions, policy.Generation, reason, message)
}

// setPolicyReady marks a policy whose spec and references are good. Ready speaks of the policy
// itself: failing users show in its message and counts, and in their own conditions.
func setPolicyReady(policy *syncv1alpha1.SyncPolicy, waiting int) {
	conds := &policy.Status.Conditions
	gen := policy.Generation
	u := policy.Status.Users
	msg := fmt.Sprintf("%d/%d users synced", u.Synced, u.Assigned)
	if u.Failing > 0 {
		msg += fmt.Sprintf(", %d failing", u.Failing)
	}
	if u.Syncing > 0 {
		msg += fmt.Sprintf(", %d syncing", u.Syncing)
	}
	if n := policy.Status.RejectedRows; n > 0 {
		msg += fmt.Sprintf("; %d export rows are no one's and synced for no one (record store: exports/%s/*.rejected.csv)", n, policy.Name)
	}
	reason := syncv1alpha1.SyncPolicyReadyReason
	if policy.Spec.Suspend {
		reason, msg = syncv1alpha1.SuspendedReason, "Suspended: no new cycles; "+msg
	}
	meta.RemoveStatusCondition(conds, syncv1alpha1.StalledCondition)
	meta.SetStatusCondition(conds, metav1.Condition{Type: syncv1alpha1.ReadyCondition, Status: metav1.ConditionTrue, Reason: reason, Message: msg, ObservedGeneration: gen})
	if waiting > 0 && !policy.Spec.Suspend {
		meta.SetStatusCondition(conds, metav1.Condition{Type: syncv1alpha1.ReconcilingCondition, Status: metav1.ConditionTrue,
			Reason: syncv1alpha1.ProgressingReason, Message: fmt.Sprintf("%d users waiting for their first cycle", waiting), ObservedGeneration: gen})
	} else {
		meta.RemoveStatusCondition(conds, syncv1alpha1.ReconcilingCondition)
	}
}
