package userstatus

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	fx "github.com/chainsync/chainsync/internal/testutil/userfixtures"
	. "github.com/onsi/gomega"
)

func policyUser(name string, last *syncv1alpha1.CycleResult, ann map[string]string) syncv1alpha1.SyncUser {
	u := syncv1alpha1.SyncUser{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID("uid-" + name), Annotations: ann,
		CreationTimestamp: *fx.At(-60)}}
	MoveTo(&u.Status, Placement{Policy: "p"}, *fx.At(-30))
	u.Status.LastCycle = last
	return u
}

func TestUserDue(t *testing.T) {
	sched, err := ParseSchedule(fx.HourlyPolicy().Spec)
	if err != nil {
		t.Fatal(err)
	}
	now := fx.T0
	synced := fx.Cycle("p", -20, -10)
	cases := []struct {
		name      string
		user      syncv1alpha1.SyncUser
		policyReq string
		failedJob time.Time
		wantAt    time.Time
		wantKey   string
	}{
		{"new on the policy: due since it entered", policyUser("a", nil, nil), "", time.Time{}, fx.At(-30).Time, "new:"},
		{"a cycle of another policy makes it new here", policyUser("a", fx.Cycle("other", -20, -10), nil), "", time.Time{}, fx.At(-30).Time, "new:"},
		{"synced: due an interval (plus jitter) after the cycle ended", policyUser("a", synced, nil), "", time.Time{}, fx.At(50).Time, "at:"},
		{"requested on the user", policyUser("a", synced, map[string]string{syncv1alpha1.RequestedAtAnnotation: "x1"}), "", time.Time{}, now, "requested:x1"},
		{"request already handled", func() syncv1alpha1.SyncUser {
			u := policyUser("a", synced, map[string]string{syncv1alpha1.RequestedAtAnnotation: "x1"})
			u.Status.LastHandledRequestedAt = "x1"
			return u
		}(), "", time.Time{}, fx.At(50).Time, "at:"},
		{"requested on the policy", policyUser("a", synced, nil), "p1", time.Time{}, now, "policy-requested:p1"},
		{"reinit", policyUser("a", synced, map[string]string{syncv1alpha1.ReinitAnnotation: syncv1alpha1.ReinitClear}), "", time.Time{}, now, "reinit:clear"},
		{"reinit tried by a cycle that failed: again on schedule, not in a loop", policyUser("a", fx.Cycle("p", -20, -10, func(c *syncv1alpha1.CycleResult) {
			c.Reinit, c.Failure = "clear", "dial tcp: connection refused"
		}), map[string]string{syncv1alpha1.ReinitAnnotation: syncv1alpha1.ReinitClear}), "", time.Time{}, fx.At(50).Time, "reinit:clear:"},
		{"the same reinit asked again", func() syncv1alpha1.SyncUser {
			u := policyUser("a", synced, map[string]string{syncv1alpha1.ReinitAnnotation: "clear@2"})
			u.Status.LastHandledReinit = syncv1alpha1.ReinitClear
			return u
		}(), "", time.Time{}, now, "reinit:clear@2"},
		{"deletes approved for the held-back cycle", policyUser("a", fx.Cycle("p", -20, -10, func(c *syncv1alpha1.CycleResult) {
			c.PendingDeletes, c.PendingDeletesCycle = 9, "p-1"
		}), map[string]string{syncv1alpha1.ApproveDeletesAnnotation: "p-1"}), "", time.Time{}, now, "approved:p-1"},
		{"an approval naming another cycle changes nothing", policyUser("a", fx.Cycle("p", -20, -10, func(c *syncv1alpha1.CycleResult) {
			c.PendingDeletes, c.PendingDeletesCycle = 9, "p-1"
		}), map[string]string{syncv1alpha1.ApproveDeletesAnnotation: "p-0"}), "", time.Time{}, fx.At(50).Time, "at:"},
		{"a Job that failed without a result is retried after a pause", policyUser("a", nil, nil), "", fx.At(-1).Time, fx.At(0).Time.Add(FailedCycleRetryDelay - time.Minute), "retry:"},
		{"a failure older than the last result is forgotten", policyUser("a", synced, nil), "", fx.At(-15).Time, fx.At(50).Time, "at:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := NewWithT(t)
			due, ok := UserDue(sched, fx.HourlyPolicy(), &tc.user, tc.policyReq, nonZero(tc.failedJob), now)
			g.Expect(ok).To(BeTrue())
			g.Expect(due.Key).To(HavePrefix(tc.wantKey))
			if tc.wantKey == "at:" || tc.wantKey == "reinit:clear:" {
				// Jitter is up to 10% of the hour, fixed per user.
				g.Expect(due.At).To(BeTemporally(">=", tc.wantAt))
				g.Expect(due.At).To(BeTemporally("<", tc.wantAt.Add(6*time.Minute)))
				again, _ := UserDue(sched, fx.HourlyPolicy(), &tc.user, tc.policyReq, nonZero(tc.failedJob), now.Add(time.Minute))
				g.Expect(again).To(Equal(due), "the same user is due at the same time whenever it is asked")
			} else {
				g.Expect(due.At).To(BeTemporally("==", tc.wantAt))
			}
		})
	}

	t.Run("suspended users never cycle", func(t *testing.T) {
		u := policyUser("a", nil, nil)
		u.Spec.Suspend = true
		_, ok := UserDue(sched, fx.HourlyPolicy(), &u, "", nil, now)
		NewWithT(t).Expect(ok).To(BeFalse())
	})
}

func nonZero(t time.Time) []time.Time {
	if t.IsZero() {
		return nil
	}
	return []time.Time{t}
}

func TestFailedJobsAreRetriedWithBackoff(t *testing.T) {
	g := NewWithT(t)
	last := fx.At(-60).Time
	g.Expect(RetryAfterFailedJobs(nil, last)).To(BeZero())
	g.Expect(RetryAfterFailedJobs([]time.Time{fx.At(-61).Time}, last)).To(BeZero(), "a failure before the last result is forgotten")
	g.Expect(RetryAfterFailedJobs([]time.Time{fx.At(-1).Time}, last)).To(Equal(fx.At(0).Time), "one failure: a minute")
	g.Expect(RetryAfterFailedJobs([]time.Time{fx.At(-1).Time, fx.At(-9).Time, fx.At(-5).Time}, last)).To(Equal(fx.At(3).Time),
		"three failures: four minutes after the latest")
	var many []time.Time
	for i := range 12 {
		many = append(many, fx.At(-59+i).Time)
	}
	g.Expect(RetryAfterFailedJobs(many, last)).To(Equal(fx.At(-48).Time.Add(MaxFailedCycleRetryDelay)), "capped")
}

func TestJitterSpreadsUsers(t *testing.T) {
	g := NewWithT(t)
	sched, _ := ParseSchedule(syncv1alpha1.SyncPolicySpec{Schedule: syncv1alpha1.Schedule{Interval: "1h", JitterPercent: 20}})
	seen := map[time.Time]bool{}
	for i := range 100 {
		seen[sched.After(fx.T0, fx.T0, fmt.Sprintf("uid-%d", i))] = true
	}
	g.Expect(len(seen)).To(BeNumerically(">", 90), "users should not all start together")
}

func TestCronSchedule(t *testing.T) {
	g := NewWithT(t)
	sched, err := ParseSchedule(syncv1alpha1.SyncPolicySpec{Schedule: syncv1alpha1.Schedule{Cron: "0 2 * * *"}})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(sched.After(fx.T0, fx.T0.Add(time.Minute), "u")).To(Equal(time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC)))

	_, err = ParseSchedule(syncv1alpha1.SyncPolicySpec{Schedule: syncv1alpha1.Schedule{Cron: "61 * * * *"}})
	g.Expect(err).To(MatchError(ContainSubstring(`spec.schedule.cron "61 * * * *"`)))
}
