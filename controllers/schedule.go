package controllers

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// failedCycleRetryDelay is how long a user waits after a cycle Job failed without a result (the
// pod crashed or could not start) before it is tried in a new Job.
const failedCycleRetryDelay = time.Minute

// cycleSchedule is a parsed spec.schedule.
type cycleSchedule struct {
	interval time.Duration
	jitter   int32
	cron     cron.Schedule
}

// parseSchedule validates what admission cannot: the cron expression itself.
func parseSchedule(s syncv1alpha1.Schedule) (cycleSchedule, error) {
	if s.Cron != "" {
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return cycleSchedule{}, fmt.Errorf("spec.schedule.cron %q: %w", s.Cron, err)
		}
		return cycleSchedule{cron: sched}, nil
	}
	interval := 15 * time.Minute
	if s.Interval != "" {
		d, err := time.ParseDuration(s.Interval)
		if err != nil {
			return cycleSchedule{}, fmt.Errorf("spec.schedule.interval %q: %w", s.Interval, err)
		}
		interval = d
	}
	return cycleSchedule{interval: interval, jitter: s.JitterPercent}, nil
}

// after returns when the next cycle is due after a cycle that started and ended at the given
// times. Interval jitter is fixed per user, so a user keeps its rhythm and users stay spread out.
func (s cycleSchedule) after(started, ended time.Time, userUID string) time.Time {
	if s.cron != nil {
		return s.cron.Next(started.UTC())
	}
	next := ended.Add(s.interval)
	if spread := int64(s.interval) * int64(s.jitter) / 100; spread > 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(userUID))
		next = next.Add(time.Duration(h.Sum64() % uint64(spread)))
	}
	return next
}

// dueCycle is when a user's next cycle on a policy is due, and a key that names that cycle: two
// reconciles that see the same world compute the same key, so the Job name they derive is the
// same and a cycle is never launched twice.
type dueCycle struct {
	at  time.Time
	key string
	// requested cycles (an annotation asked for them) start at once, without waiting to
	// gather a fuller batch.
	requested bool
}

// userDue computes a user's next cycle on the policy. ok is false for a user that must not cycle
// (suspended). policyRequest is the policy's unhandled requested-at value, if any;
// lastFailedJob is when the latest failed cycle Job holding the user ended.
func userDue(sched cycleSchedule, policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser,
	policyRequest string, lastFailedJob time.Time, now time.Time) (due dueCycle, ok bool) {
	if user.Spec.Suspend {
		return dueCycle{}, false
	}
	st := &user.Status
	ann := user.Annotations
	c := st.LastCycle
	ran := c != nil && c.Policy == policy.Name && c.CompletionTime != nil

	switch {
	case ann[syncv1alpha1.RequestedAtAnnotation] != "" && ann[syncv1alpha1.RequestedAtAnnotation] != st.LastHandledRequestedAt:
		due = dueCycle{at: now, key: "requested:" + ann[syncv1alpha1.RequestedAtAnnotation], requested: true}
	case ann[syncv1alpha1.ReinitAnnotation] != "" && ann[syncv1alpha1.ReinitAnnotation] != st.LastHandledReinit:
		due = dueCycle{at: now, key: "reinit:" + ann[syncv1alpha1.ReinitAnnotation], requested: true}
	case ran && c.PendingDeletes > 0 && ann[syncv1alpha1.ApproveDeletesAnnotation] == c.PendingDeletesCycle:
		due = dueCycle{at: now, key: "approved:" + c.PendingDeletesCycle, requested: true}
	case policyRequest != "":
		due = dueCycle{at: now, key: "policy-requested:" + policyRequest, requested: true}
	case !ran:
		// New on this policy: at once. The key is the time the user entered its step, so a user
		// that comes back to a policy later is a new cycle.
		entered := user.CreationTimestamp
		if n := len(st.History); n > 0 && st.History[n-1].EnteredTime != nil {
			entered = *st.History[n-1].EnteredTime
		}
		due = dueCycle{at: entered.Time, key: "new:" + strconv.FormatInt(entered.Unix(), 10)}
	default:
		started := c.CompletionTime.Time
		if c.StartTime != nil {
			started = c.StartTime.Time
		}
		at := sched.after(started, c.CompletionTime.Time, string(user.UID))
		due = dueCycle{at: at, key: "at:" + strconv.FormatInt(at.Unix(), 10)}
	}

	var lastResult time.Time
	if ran {
		lastResult = c.CompletionTime.Time
	}
	if lastFailedJob.After(lastResult) {
		if retry := lastFailedJob.Add(failedCycleRetryDelay); retry.After(due.at) {
			due = dueCycle{at: retry, key: "retry:" + strconv.FormatInt(retry.Unix(), 10)}
		}
	}
	return due, true
}

// nextSyncTime is what a SyncUser's status shows as its next cycle.
func nextSyncTime(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser, now time.Time) *metav1.Time {
	sched, err := parseSchedule(policy.Spec.Schedule)
	if err != nil || policy.Spec.Suspend {
		return nil
	}
	due, ok := userDue(sched, policy, user, "", time.Time{}, now)
	if !ok {
		return nil
	}
	t := metav1.NewTime(due.at.Truncate(time.Second))
	return &t
}
