package userstatus

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/robfig/cron/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// A user whose cycle Job failed without a result (the pod crashed, could not start, or ran past
// its deadline) is tried in a new Job after FailedCycleRetryDelay, doubled for each failed Job
// since its last result, up to MaxFailedCycleRetryDelay: a broken template or a missing
// RoleBinding costs a Job every few minutes, not a hot loop. The count is of the failed Jobs the
// policy keeps (jobTemplate.failedJobsHistoryLimit).
const (
	FailedCycleRetryDelay    = time.Minute
	MaxFailedCycleRetryDelay = 30 * time.Minute
)

// RetryAfterFailedJobs says when a user whose Jobs ended at failedEnds (in any order) is tried
// again, counting only failures after its last result; zero when none.
func RetryAfterFailedJobs(failedEnds []time.Time, lastResult time.Time) time.Time {
	var latest time.Time
	n := 0
	for _, t := range failedEnds {
		if t.After(lastResult) {
			n++
			if t.After(latest) {
				latest = t
			}
		}
	}
	if n == 0 {
		return time.Time{}
	}
	delay := FailedCycleRetryDelay
	for i := 1; i < n && delay < MaxFailedCycleRetryDelay; i++ {
		delay *= 2
	}
	return latest.Add(min(delay, MaxFailedCycleRetryDelay))
}

// Schedule is a parsed spec.schedule.
type Schedule struct {
	Interval time.Duration
	Jitter   int32
	Cron     cron.Schedule
	// Gather is how long users that became due wait for others before a Job smaller than
	// usersPerJob is launched: users placed in a burst (a GitOps sync, a chain step completing
	// for many at once) share Jobs instead of getting one each.
	Gather time.Duration
}

// DefaultGatherWindow is spec.jobTemplate.gatherWindow's default, for policies stored before it.
const DefaultGatherWindow = 2 * time.Second

// ParseSchedule validates what admission cannot: the cron expression itself.
func ParseSchedule(spec syncv1alpha1.SyncPolicySpec) (Schedule, error) {
	gather := DefaultGatherWindow
	if w := spec.JobTemplate.GatherWindow; w != "" {
		d, err := time.ParseDuration(w)
		if err != nil {
			return Schedule{}, fmt.Errorf("spec.jobTemplate.gatherWindow %q: %w", w, err)
		}
		gather = d
	}
	s := spec.Schedule
	if s.Cron != "" {
		sched, err := cron.ParseStandard(s.Cron)
		if err != nil {
			return Schedule{}, fmt.Errorf("spec.schedule.cron %q: %w", s.Cron, err)
		}
		return Schedule{Cron: sched, Gather: gather}, nil
	}
	interval := 15 * time.Minute
	if s.Interval != "" {
		d, err := time.ParseDuration(s.Interval)
		if err != nil {
			return Schedule{}, fmt.Errorf("spec.schedule.interval %q: %w", s.Interval, err)
		}
		interval = d
	}
	return Schedule{Interval: interval, Jitter: s.JitterPercent, Gather: gather}, nil
}

// After returns when the next cycle is due after a cycle that started and ended at the given
// times. Interval jitter is fixed per user, so a user keeps its rhythm and users stay spread out.
func (s Schedule) After(started, ended time.Time, userUID string) time.Time {
	if s.Cron != nil {
		return s.Cron.Next(started.UTC())
	}
	next := ended.Add(s.Interval)
	if spread := int64(s.Interval) * int64(s.Jitter) / 100; spread > 0 {
		h := fnv.New64a()
		_, _ = h.Write([]byte(userUID))
		next = next.Add(time.Duration(h.Sum64() % uint64(spread)))
	}
	return next
}

// Due is when a user's next cycle on a policy is due, and a key that names that cycle: two
// reconciles that see the same world compute the same key, so the Job name they derive is the
// same and a cycle is never launched twice.
type Due struct {
	At  time.Time
	Key string
	// requested cycles (an annotation asked for them) start at once, without waiting to
	// gather a fuller batch.
	Requested bool
}

// UserDue computes a user's next cycle on the policy. ok is false for a user that must not cycle
// (suspended). policyRequest is the policy's unhandled requested-at value, if any;
// failedJobs are when the failed cycle Jobs holding the user ended.
func UserDue(sched Schedule, policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser,
	policyRequest string, failedJobs []time.Time, now time.Time) (due Due, ok bool) {
	if user.Spec.Suspend {
		return Due{}, false
	}
	st := &user.Status
	ann := user.Annotations
	c := st.LastCycle
	ran := c != nil && c.Policy == policy.Name && c.CompletionTime != nil

	switch {
	case ann[syncv1alpha1.RequestedAtAnnotation] != "" && ann[syncv1alpha1.RequestedAtAnnotation] != st.LastHandledRequestedAt:
		due = Due{At: now, Key: "requested:" + ann[syncv1alpha1.RequestedAtAnnotation], Requested: true}
	case ann[syncv1alpha1.ReinitAnnotation] != "" && ann[syncv1alpha1.ReinitAnnotation] != st.LastHandledReinit:
		reinit := ann[syncv1alpha1.ReinitAnnotation]
		if ran && c.Reinit == reinit {
			// Tried, and it failed or was a dry run: tried again on schedule, not in a loop.
			at := sched.After(startedAt(c), c.CompletionTime.Time, string(user.UID))
			due = Due{At: at, Key: "reinit:" + reinit + ":" + strconv.FormatInt(at.Unix(), 10)}
		} else {
			due = Due{At: now, Key: "reinit:" + reinit, Requested: true}
		}
	case ran && c.PendingDeletes > 0 && ann[syncv1alpha1.ApproveDeletesAnnotation] == c.PendingDeletesCycle:
		due = Due{At: now, Key: "approved:" + c.PendingDeletesCycle, Requested: true}
	case policyRequest != "":
		due = Due{At: now, Key: "policy-requested:" + policyRequest, Requested: true}
	case !ran:
		// New on this policy: at once. The key is the time the user entered its step, so a user
		// that comes back to a policy later is a new cycle.
		entered := user.CreationTimestamp
		if n := len(st.History); n > 0 && st.History[n-1].EnteredTime != nil {
			entered = *st.History[n-1].EnteredTime
		}
		due = Due{At: entered.Time, Key: "new:" + strconv.FormatInt(entered.Unix(), 10)}
	default:
		at := sched.After(startedAt(c), c.CompletionTime.Time, string(user.UID))
		due = Due{At: at, Key: "at:" + strconv.FormatInt(at.Unix(), 10)}
	}

	var lastResult time.Time
	if ran {
		lastResult = c.CompletionTime.Time
	}
	if retry := RetryAfterFailedJobs(failedJobs, lastResult); retry.After(due.At) {
		due = Due{At: retry, Key: "retry:" + strconv.FormatInt(retry.Unix(), 10)}
	}
	return due, true
}

// startedAt is when a finished cycle started, or ended when that is not known.
func startedAt(c *syncv1alpha1.CycleResult) time.Time {
	if c.StartTime != nil {
		return c.StartTime.Time
	}
	return c.CompletionTime.Time
}

// NextSyncTime is what a SyncUser's status shows as its next cycle, given when the failed cycle
// Jobs holding it ended.
func NextSyncTime(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser, failedJobs []time.Time, now time.Time) *metav1.Time {
	sched, err := ParseSchedule(policy.Spec)
	if err != nil || policy.Spec.Suspend {
		return nil
	}
	due, ok := UserDue(sched, policy, user, "", failedJobs, now)
	if !ok {
		return nil
	}
	t := metav1.NewTime(due.At.Truncate(time.Second))
	return &t
}
