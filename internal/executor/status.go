package executor

import (
	"sort"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Reasons the executor gives in a Job's FailureTarget and Failed conditions, besides the Job
// controller's own (BackoffLimitExceeded, DeadlineExceeded).
const (
	// ReasonExecutorRestarted: the Job had started under an executor that is gone, with its
	// processes. It is failed rather than run again, so that no Job ever runs twice.
	ReasonExecutorRestarted = "ExecutorRestarted"
	// The pod template references an object or key that does not exist, so its pod could never
	// start.
	ReasonSecretNotFound                = "SecretNotFound"
	ReasonSecretKeyNotFound             = "SecretKeyNotFound"
	ReasonConfigMapNotFound             = "ConfigMapNotFound"
	ReasonConfigMapKeyNotFound          = "ConfigMapKeyNotFound"
	ReasonPersistentVolumeClaimNotFound = "PersistentVolumeClaimNotFound"
	ReasonServiceAccountNotFound        = "ServiceAccountNotFound"
	// ReasonUnsupportedPodTemplate: the template uses something the executor cannot run locally
	// (several containers, init containers, a volume type other than persistentVolumeClaim,
	// secret, configMap, emptyDir and hostPath, nested mount paths, an unknown fieldRef).
	ReasonUnsupportedPodTemplate = "UnsupportedPodTemplate"
)

// progress is what a Job's pods have done so far.
type progress struct {
	active, succeeded, failed int32
	// completedIndexes are the indexes that succeeded, for an Indexed Job.
	completedIndexes []int
}

// setProgress writes the counters as the Job controller does, ready <= active included.
func setProgress(status *batchv1.JobStatus, indexed bool, p progress) {
	status.Active = p.active
	status.Ready = ptr.To(p.active)
	status.Terminating = ptr.To[int32](0)
	status.Succeeded = p.succeeded
	status.Failed = p.failed
	status.UncountedTerminatedPods = &batchv1.UncountedTerminatedPods{}
	if indexed {
		status.CompletedIndexes = formatIndexes(p.completedIndexes)
	}
}

// markStarted records the start: the API server refuses to change startTime afterwards, which
// is what makes it the executor's claim on the Job.
func markStarted(status *batchv1.JobStatus, now time.Time) {
	status.StartTime = ptr.To(metav1.NewTime(now))
}

// markSuccessCriteriaMet is the first of the two steps of success. The API server accepts
// Complete only on a Job that already says SuccessCriteriaMet and has no active pods.
func markSuccessCriteriaMet(status *batchv1.JobStatus, now time.Time) {
	setCondition(status, batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached,
		"Reached expected number of succeeded pods", now)
}

// markComplete finishes a Job that met its success criteria. completionTime is required with
// Complete, and only with Complete.
func markComplete(status *batchv1.JobStatus, now time.Time) {
	target := findCondition(status, batchv1.JobSuccessCriteriaMet)
	setCondition(status, batchv1.JobComplete, target.Reason, target.Message, now)
	status.CompletionTime = ptr.To(metav1.NewTime(now))
}

// markFailureTarget is the first of the two steps of failure: Failed is accepted only on a Job
// that already says FailureTarget.
func markFailureTarget(status *batchv1.JobStatus, reason, message string, now time.Time) {
	setCondition(status, batchv1.JobFailureTarget, reason, message, now)
}

// markFailed finishes a Job that reached its failure target, with the same reason and message.
// A failed Job has no completionTime.
func markFailed(status *batchv1.JobStatus, now time.Time) {
	target := findCondition(status, batchv1.JobFailureTarget)
	setCondition(status, batchv1.JobFailed, target.Reason, target.Message, now)
}

func setCondition(status *batchv1.JobStatus, kind batchv1.JobConditionType, reason, message string, now time.Time) {
	condition := batchv1.JobCondition{
		Type:               kind,
		Status:             corev1.ConditionTrue,
		Reason:             reason,
		Message:            message,
		LastProbeTime:      metav1.NewTime(now),
		LastTransitionTime: metav1.NewTime(now),
	}
	for i := range status.Conditions {
		if status.Conditions[i].Type == kind {
			status.Conditions[i] = condition
			return
		}
	}
	status.Conditions = append(status.Conditions, condition)
}

func findCondition(status *batchv1.JobStatus, kind batchv1.JobConditionType) *batchv1.JobCondition {
	for i := range status.Conditions {
		if status.Conditions[i].Type == kind && status.Conditions[i].Status == corev1.ConditionTrue {
			return &status.Conditions[i]
		}
	}
	return nil
}

// finishedAt returns when the Job ended (the Complete or Failed condition's transition, as the TTL
// controller reads it), or false while it runs.
func finishedAt(status *batchv1.JobStatus) (time.Time, bool) {
	for _, kind := range []batchv1.JobConditionType{batchv1.JobComplete, batchv1.JobFailed} {
		if c := findCondition(status, kind); c != nil {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// expiresAt returns when a finished Job is to be deleted, or false when it is kept.
func expiresAt(job *batchv1.Job) (time.Time, bool) {
	finished, ok := finishedAt(&job.Status)
	if !ok || job.Spec.TTLSecondsAfterFinished == nil {
		return time.Time{}, false
	}
	return finished.Add(time.Duration(*job.Spec.TTLSecondsAfterFinished) * time.Second), true
}

// formatIndexes writes indexes in the Job API's interval form: "0-2,4".
func formatIndexes(indexes []int) string {
	sorted := append([]int(nil), indexes...)
	sort.Ints(sorted)
	var parts []string
	for i := 0; i < len(sorted); {
		first := sorted[i]
		last := first
		for i++; i < len(sorted) && sorted[i] <= last+1; i++ {
			last = sorted[i]
		}
		if last > first {
			parts = append(parts, strconv.Itoa(first)+"-"+strconv.Itoa(last))
		} else {
			parts = append(parts, strconv.Itoa(first))
		}
	}
	return strings.Join(parts, ",")
}

// countLostPods counts the pods of a previous executor as failed, as the Job controller counts
// pods lost with their node.
func countLostPods(status *batchv1.JobStatus) {
	status.Failed += status.Active
	status.Active = 0
	status.Ready = ptr.To[int32](0)
}

func isFinished(job *batchv1.Job) bool {
	_, finished := finishedAt(&job.Status)
	return finished
}

func equalStatus(a, b *batchv1.JobStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}
