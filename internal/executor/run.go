package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

// errJobGone: the Job was deleted, or replaced by another of the same name, while it ran.
var errJobGone = errors.New("the Job is gone")

// Output kept in a failure message: the last lines, from the end of the pod's log.
const (
	tailLines = 10
	tailBytes = 4096

	statusWriteTimeout = 30 * time.Second
)

// podResult is how one pod attempt ended.
type podResult struct {
	index    int
	pod      string
	exitCode int
	// err: the pod could not start (a *configError when it never could).
	err  error
	tail string
}

func (r podResult) succeeded() bool { return r.err == nil && r.exitCode == 0 }

// describe says how the attempt failed, with its output's last lines.
func (r podResult) describe() string {
	var b strings.Builder
	if r.err != nil {
		fmt.Fprintf(&b, "pod %s could not start: %v", r.pod, r.err)
	} else {
		fmt.Fprintf(&b, "pod %s exited with code %d", r.pod, r.exitCode)
	}
	if r.tail != "" {
		fmt.Fprintf(&b, "; last lines of its output:\n%s", r.tail)
	}
	return b.String()
}

// runJob runs the Job's pods until it succeeds, fails, or is stopped, and reports each step
// through the Job's status. Pods of an index that failed are run again until the Job's failures
// exceed backoffLimit. Retries start at once, without the Job controller's growing delay.
func (e *Executor) runJob(ctx context.Context, job *batchv1.Job) {
	log := logr.FromContextOrDiscard(ctx)
	key, uid := types.NamespacedName{Namespace: job.Namespace, Name: job.Name}, job.UID
	indexed := isIndexed(job)
	// A work-queue Job (no completions) is run as one completion.
	completions := int(ptr.Deref(job.Spec.Completions, 1))
	parallelism := min(ptr.Deref(job.Spec.Parallelism, 1), int32(completions))
	backoffLimit := int32(ptr.Deref(job.Spec.BackoffLimit, 6))

	pending := make([]int, completions)
	for i := range pending {
		pending[i] = i
	}
	attempts := make([]int, completions)
	// Pods stop when the run decides, not when ctx ends: the run must see them end first.
	podsCtx, stopPods := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPods()
	results := make(chan podResult)
	var state progress
	published := progress{active: -1}

	// stopAll stops the active pods and waits for them.
	stopAll := func() {
		stopPods()
		for ; state.active > 0; state.active-- {
			if r := <-results; r.succeeded() {
				state.succeeded++
				state.completedIndexes = append(state.completedIndexes, r.index)
			} else {
				state.failed++
			}
		}
	}
	withProgress := func(status *batchv1.JobStatus) { setProgress(status, indexed, state) }

	for {
		if len(pending) == 0 && state.active == 0 {
			log.Info("Job succeeded", "succeeded", state.succeeded, "failed", state.failed)
			e.report(ctx, e.succeed(ctx, key, uid, withProgress))
			return
		}
		if !sameProgress(state, published) {
			if err := e.writeStatus(ctx, key, uid, withProgress); err != nil {
				if errors.Is(err, errJobGone) {
					stopAll()
					return
				}
				log.Error(err, "Recording the Job's progress failed")
			} else {
				published = state
				published.completedIndexes = append([]int(nil), state.completedIndexes...)
			}
		}

		var slots chan struct{}
		if state.active < parallelism && len(pending) > 0 {
			slots = e.slots
		}
		select {
		case slots <- struct{}{}:
			index := pending[0]
			pending = pending[1:]
			attempt := attempts[index]
			attempts[index]++
			state.active++
			go func() {
				defer func() { <-e.slots }()
				results <- e.runPod(podsCtx, job, index, attempt)
			}()

		case r := <-results:
			state.active--
			if r.succeeded() {
				state.succeeded++
				state.completedIndexes = append(state.completedIndexes, r.index)
				continue
			}
			state.failed++
			log.Info("Pod failed", "pod", r.pod, "exitCode", r.exitCode, "error", r.err)
			var config *configError
			if errors.As(r.err, &config) {
				stopAll()
				e.report(ctx, e.fail(ctx, key, uid, withProgress, config.reason, config.message))
				return
			}
			if state.failed > backoffLimit {
				stopAll()
				e.report(ctx, e.fail(ctx, key, uid, withProgress, batchv1.JobReasonBackoffLimitExceeded,
					"Job has reached the specified backoff limit: "+r.describe()))
				return
			}
			pending = append(pending, r.index)

		case <-ctx.Done():
			stopAll()
			cause := context.Cause(ctx)
			if errors.Is(cause, errDeadline) {
				log.Info("Job passed its active deadline; its pods were stopped")
				e.report(ctx, e.fail(ctx, key, uid, withProgress, batchv1.JobReasonDeadlineExceeded,
					"Job was active longer than specified deadline"))
				return
			}
			log.Info("Stopped the Job's pods", "cause", cause.Error())
			return
		}
	}
}

func (e *Executor) report(ctx context.Context, err error) {
	if err != nil && !errors.Is(err, errJobGone) {
		logr.FromContextOrDiscard(ctx).Error(err, "Recording the Job's end failed")
	}
}

func sameProgress(a, b progress) bool {
	return a.active == b.active && a.succeeded == b.succeeded && a.failed == b.failed &&
		formatIndexes(a.completedIndexes) == formatIndexes(b.completedIndexes)
}

// runPod prepares one pod attempt, runs it, and removes its sandbox, keeping its output.
func (e *Executor) runPod(ctx context.Context, job *batchv1.Job, index, attempt int) podResult {
	log := logr.FromContextOrDiscard(ctx)
	result := podResult{index: index}
	p, err := e.preparePod(ctx, job, index, attempt)
	if p != nil {
		result.pod = p.name
		defer func() {
			if err := p.cleanup(); err != nil {
				log.Error(err, "Removing the pod's sandbox failed", "pod", p.name)
			}
		}()
	}
	if err != nil {
		result.err = err
		return result
	}
	output, err := os.Create(p.logPath)
	if err != nil {
		result.err = fmt.Errorf("creating the output file of pod %s: %w", p.name, err)
		return result
	}
	defer output.Close()
	p.container.Stdout, p.container.Stderr = output, output
	log.V(1).Info("Starting pod", "pod", p.name, "args", p.container.Args)
	result.exitCode, result.err = e.opts.Runner.Run(ctx, p.container)
	result.tail = lastLines(output)
	return result
}

// lastLines returns the end of a pod's output.
func lastLines(f *os.File) string {
	info, err := f.Stat()
	if err != nil {
		return ""
	}
	offset := max(info.Size()-tailBytes, 0)
	buf := make([]byte, info.Size()-offset)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(buf), "\n"), "\n")
	if offset > 0 && len(lines) > 1 {
		lines = lines[1:] // cut mid-line
	}
	if len(lines) > tailLines {
		lines = lines[len(lines)-tailLines:]
	}
	return strings.Join(lines, "\n")
}

// succeed ends the Job as the Job controller does: SuccessCriteriaMet with the final counts, then
// Complete with completionTime.
func (e *Executor) succeed(ctx context.Context, key types.NamespacedName, uid types.UID, counts func(*batchv1.JobStatus)) error {
	err := e.writeStatus(ctx, key, uid, func(status *batchv1.JobStatus) {
		counts(status)
		markSuccessCriteriaMet(status, time.Now())
	})
	if err != nil {
		return err
	}
	return e.finish(ctx, key, uid)
}

// fail ends the Job as the Job controller does: FailureTarget with the reason and final counts,
// then Failed.
func (e *Executor) fail(ctx context.Context, key types.NamespacedName, uid types.UID, counts func(*batchv1.JobStatus), reason, message string) error {
	err := e.writeStatus(ctx, key, uid, func(status *batchv1.JobStatus) {
		counts(status)
		status.Active, status.Ready = 0, ptr.To[int32](0)
		markFailureTarget(status, reason, message, time.Now())
	})
	if err != nil {
		return err
	}
	return e.finish(ctx, key, uid)
}

// finish writes the terminal condition of a Job whose end is decided.
func (e *Executor) finish(ctx context.Context, key types.NamespacedName, uid types.UID) error {
	return e.writeStatus(ctx, key, uid, func(status *batchv1.JobStatus) {
		if _, finished := finishedAt(status); finished {
			return
		}
		now := time.Now()
		if findCondition(status, batchv1.JobSuccessCriteriaMet) != nil {
			markComplete(status, now)
		} else if findCondition(status, batchv1.JobFailureTarget) != nil {
			markFailed(status, now)
		}
	})
}

// writeStatus applies change to the Job as the server holds it, retrying on conflicts and
// transient errors. It is not cut short by ctx ending: a run whose deadline passed still has to
// say so.
func (e *Executor) writeStatus(ctx context.Context, key types.NamespacedName, uid types.UID, change func(*batchv1.JobStatus)) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), statusWriteTimeout)
	defer cancel()
	retriable := func(err error) bool { return !errors.Is(err, errJobGone) && !apierrors.IsInvalid(err) }
	return retry.OnError(retry.DefaultBackoff, retriable, func() error {
		var job batchv1.Job
		if err := e.client.Get(ctx, key, &job); err != nil {
			if apierrors.IsNotFound(err) {
				return errJobGone
			}
			return fmt.Errorf("getting Job %s: %w", key, err)
		}
		if job.UID != uid {
			return errJobGone
		}
		before := job.Status.DeepCopy()
		change(&job.Status)
		if equalStatus(before, &job.Status) {
			return nil
		}
		if err := e.client.Status().Update(ctx, &job); err != nil {
			if apierrors.IsNotFound(err) {
				return errJobGone
			}
			return fmt.Errorf("updating the status of Job %s: %w", key, err)
		}
		return nil
	})
}
