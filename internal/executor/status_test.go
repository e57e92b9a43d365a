package executor

import (
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestFormatIndexes(t *testing.T) {
	for _, tc := range []struct {
		indexes []int
		want    string
	}{
		{nil, ""},
		{[]int{0}, "0"},
		{[]int{2, 0, 1}, "0-2"},
		{[]int{0, 1, 2, 4}, "0-2,4"},
		{[]int{5, 3, 9, 8, 7}, "3,5,7-9"},
		{[]int{1, 1, 2}, "1-2"},
	} {
		if got := formatIndexes(tc.indexes); got != tc.want {
			t.Errorf("formatIndexes(%v) = %q, want %q", tc.indexes, got, tc.want)
		}
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"USER": "ann", "EMPTY": ""}
	for _, tc := range []struct {
		in, want string
	}{
		{"plain", "plain"},
		{"$(USER)", "ann"},
		{"hello $(USER)!", "hello ann!"},
		{"$(EMPTY)x", "x"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(USER)", "$(USER)"},
		{"$$", "$"},
		{"$$$$", "$$"},
		{"cost: $5", "cost: $5"},
		{"$(USER", "$(USER"},
		{"end$", "end$"},
	} {
		if got := expand(tc.in, env); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The API server accepts Complete only after SuccessCriteriaMet, with completionTime, and Failed
// only after FailureTarget, without completionTime; each end copies its target's reason.
func TestEndingConditions(t *testing.T) {
	g := NewWithT(t)
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	end := start.Add(time.Minute)

	var succeeded batchv1.JobStatus
	markStarted(&succeeded, start)
	setProgress(&succeeded, true, progress{succeeded: 3, completedIndexes: []int{0, 1, 2}})
	markSuccessCriteriaMet(&succeeded, end)
	_, finished := finishedAt(&succeeded)
	g.Expect(finished).To(BeFalse(), "SuccessCriteriaMet alone does not finish a Job")
	markComplete(&succeeded, end)
	g.Expect(succeeded.CompletionTime).To(Equal(ptr.To(metav1.NewTime(end))))
	g.Expect(succeeded.CompletedIndexes).To(Equal("0-2"))
	g.Expect(succeeded.Ready).To(Equal(ptr.To[int32](0)))
	g.Expect(succeeded.Conditions).To(HaveLen(2))
	g.Expect(succeeded.Conditions[1]).To(And(
		HaveField("Type", batchv1.JobComplete),
		HaveField("Status", corev1.ConditionTrue),
		HaveField("Reason", batchv1.JobReasonCompletionsReached),
	))
	at, finished := finishedAt(&succeeded)
	g.Expect(finished).To(BeTrue())
	g.Expect(at).To(Equal(end))

	var failed batchv1.JobStatus
	markStarted(&failed, start)
	setProgress(&failed, false, progress{failed: 1})
	markFailureTarget(&failed, batchv1.JobReasonDeadlineExceeded, "Job was active longer than specified deadline", end)
	markFailed(&failed, end)
	g.Expect(failed.CompletionTime).To(BeNil())
	g.Expect(failed.CompletedIndexes).To(BeEmpty())
	g.Expect(failed.Conditions[1]).To(And(
		HaveField("Type", batchv1.JobFailed),
		HaveField("Reason", batchv1.JobReasonDeadlineExceeded),
		HaveField("Message", "Job was active longer than specified deadline"),
	))
}

func TestCountLostPods(t *testing.T) {
	status := batchv1.JobStatus{Active: 2, Ready: ptr.To[int32](2), Failed: 1}
	countLostPods(&status)
	if status.Active != 0 || *status.Ready != 0 || status.Failed != 3 {
		t.Errorf("got active %d, ready %d, failed %d; want 0, 0, 3", status.Active, *status.Ready, status.Failed)
	}
}

func TestExpiresAt(t *testing.T) {
	g := NewWithT(t)
	end := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	finished := func(ttl *int32) *batchv1.Job {
		job := &batchv1.Job{Spec: batchv1.JobSpec{TTLSecondsAfterFinished: ttl}}
		markFailureTarget(&job.Status, "BackoffLimitExceeded", "", end)
		markFailed(&job.Status, end)
		return job
	}

	_, ok := expiresAt(finished(nil))
	g.Expect(ok).To(BeFalse(), "a Job without TTL is kept")
	expiry, ok := expiresAt(finished(ptr.To[int32](30)))
	g.Expect(ok).To(BeTrue())
	g.Expect(expiry).To(Equal(end.Add(30 * time.Second)))
	_, ok = expiresAt(&batchv1.Job{Spec: batchv1.JobSpec{TTLSecondsAfterFinished: ptr.To[int32](0)}})
	g.Expect(ok).To(BeFalse(), "a running Job does not expire")
}
