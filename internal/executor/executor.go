package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

const (
	// ManagedByLabel and ManagedByValue mark the Jobs the executor runs.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "chainsync"
	// FSRootEnv names the sandbox directory that stands for the container's root filesystem, in
	// every process's environment (for scripts; chainsync itself does not read it).
	FSRootEnv = "CHAINSYNC_FS_ROOT"
	// FSRootFlag is the flag (without its dashes) that gives a chainsync command the sandbox:
	// the executor passes --fs-root=<sandbox> as its first argument.
	FSRootFlag = "fs-root"

	defaultMaxConcurrentPods = 4
)

// Options configure an Executor.
type Options struct {
	// DataDir holds the claims' directories, the pods' sandboxes and their output. Required.
	DataDir string
	// Runner runs the containers: ProcessRunner or InProcessRunner. Required.
	Runner Runner
	// Namespaces limits the executor to Jobs in these namespaces; empty means every namespace.
	Namespaces []string
	// MaxConcurrentPods bounds the pods running at once over all Jobs, as a node's capacity
	// would. Defaults to 4.
	MaxConcurrentPods int
	// Logger defaults to the manager's logger, named "executor".
	Logger logr.Logger
}

// Executor plays the Job controller and the kubelet for chainsync's Jobs. See the package doc.
type Executor struct {
	opts   Options
	client client.Client
	// server, caData and insecure are how a pod's kubeconfig reaches the API server.
	server   string
	caData   []byte
	insecure bool
	// slots holds a token for every running pod.
	slots chan struct{}
	// stopAll ends every run when the manager stops.
	base    context.Context
	stopAll context.CancelCauseFunc

	mu   sync.Mutex
	runs map[types.NamespacedName]*jobRun
	// seen are the Jobs this executor started: never started again, nor taken for one started
	// by a previous executor.
	seen    map[types.UID]bool
	running sync.WaitGroup
}

// jobRun is a Job being run by this executor.
type jobRun struct {
	uid  types.UID
	stop context.CancelCauseFunc
	done chan struct{}
}

var (
	errJobDeleted = errors.New("the Job was deleted")
	errShutdown   = errors.New("the executor is stopping")
	errDeadline   = errors.New("the Job's active deadline passed")
)

// New returns an executor that reaches the API server through cfg, with its own direct
// (uncached) client: it decides from what the server holds, never from a stale cache.
func New(cfg *rest.Config, opts Options) (*Executor, error) {
	if opts.DataDir == "" {
		return nil, errors.New("executor: DataDir is required")
	}
	if opts.Runner == nil {
		return nil, errors.New("executor: Runner is required")
	}
	if opts.MaxConcurrentPods <= 0 {
		opts.MaxConcurrentPods = defaultMaxConcurrentPods
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("building the executor's scheme: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("creating the executor's client: %w", err)
	}
	server, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("finding the API server's address: %w", err)
	}
	caData := cfg.CAData
	if len(caData) == 0 && cfg.CAFile != "" {
		if caData, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("reading the API server's CA: %w", err)
		}
	}
	base, stopAll := context.WithCancelCause(context.Background())
	return &Executor{
		opts:     opts,
		client:   c,
		server:   server.String(),
		caData:   caData,
		insecure: cfg.Insecure,
		slots:    make(chan struct{}, opts.MaxConcurrentPods),
		base:     base,
		stopAll:  stopAll,
		runs:     map[types.NamespacedName]*jobRun{},
		seen:     map[types.UID]bool{},
	}, nil
}

// SetupWithManager adds the executor to mgr: a controller on Jobs labelled
// app.kubernetes.io/managed-by=chainsync (watched through the manager's cache, so its
// credentials must list and watch Jobs), and a runnable that stops every pod when the manager
// stops. Neither waits for leader election: like a node, the executor always runs.
func (e *Executor) SetupWithManager(mgr ctrl.Manager) error {
	if e.opts.Logger.GetSink() == nil {
		e.opts.Logger = mgr.GetLogger().WithName("executor")
	}
	if err := mgr.Add(e); err != nil {
		return fmt.Errorf("adding the executor's runnable: %w", err)
	}
	ours := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return obj.GetLabels()[ManagedByLabel] == ManagedByValue &&
			(len(e.opts.Namespaces) == 0 || slices.Contains(e.opts.Namespaces, obj.GetNamespace()))
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("chainsync-executor").
		For(&batchv1.Job{}, builder.WithPredicates(ours)).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: 2,
			NeedLeaderElection:      ptr.To(false),
			Logger:                  e.opts.Logger,
			// Tests start a manager, with an executor, per test in one process.
			SkipNameValidation: ptr.To(true),
		}).
		Complete(e)
}

// Start waits for the manager to stop, then stops every pod (SIGTERM, then SIGKILL after the
// grace period) and waits for them. Their Jobs' status is left as it is.
func (e *Executor) Start(ctx context.Context) error {
	<-ctx.Done()
	e.stopAll(errShutdown)
	e.running.Wait()
	return nil
}

// NeedLeaderElection is false: the executor is part of the cluster, not of the operator.
func (e *Executor) NeedLeaderElection() bool { return false }

// Reconcile starts a new Job, stops the pods of a deleted one, finishes one whose end was
// decided but not yet written, and deletes finished ones after their TTL.
func (e *Executor) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	log := ctrl.LoggerFrom(ctx)
	var job batchv1.Job
	if err := e.client.Get(ctx, req.NamespacedName, &job); err != nil {
		if apierrors.IsNotFound(err) {
			e.stopRun(req.NamespacedName, "", errJobDeleted)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("getting Job %s: %w", req.NamespacedName, err)
	}
	// A Job recreated under the same name is a new Job.
	e.stopRun(req.NamespacedName, job.UID, errJobDeleted)

	switch {
	case job.DeletionTimestamp != nil:
		return ctrl.Result{}, e.releaseDeleted(ctx, &job)
	case isFinished(&job):
		return e.expire(ctx, &job)
	case e.isRunning(req.NamespacedName, job.UID):
		return ctrl.Result{}, nil
	case findCondition(&job.Status, batchv1.JobSuccessCriteriaMet) != nil || findCondition(&job.Status, batchv1.JobFailureTarget) != nil:
		// The end was decided but not written, by a run that could not write it.
		return ctrl.Result{}, e.finish(ctx, client.ObjectKeyFromObject(&job), job.UID)
	case e.hasSeen(job.UID):
		return ctrl.Result{}, nil
	case ptr.Deref(job.Spec.Suspend, false) || ptr.Deref(job.Spec.Parallelism, 1) == 0:
		log.V(1).Info("Job is suspended or has parallelism 0, not starting it")
		return ctrl.Result{}, nil
	case job.Status.StartTime != nil:
		log.Info("Failing a Job started by a previous executor, whose pods are gone")
		return ctrl.Result{}, e.fail(ctx, client.ObjectKeyFromObject(&job), job.UID, countLostPods, ReasonExecutorRestarted,
			"The Job had started under an executor that stopped; its pods were lost and are not run again")
	default:
		return ctrl.Result{}, e.start(ctx, &job)
	}
}

// releaseDeleted stops a deleted Job's pods, then removes the finalizers the garbage collector
// would: envtest runs none, and the executor's pods are not API objects, so there is nothing to
// orphan or to delete first.
func (e *Executor) releaseDeleted(ctx context.Context, job *batchv1.Job) error {
	e.stopRun(client.ObjectKeyFromObject(job), "", errJobDeleted)
	if !slices.Contains(job.Finalizers, metav1.FinalizerOrphanDependents) &&
		!slices.Contains(job.Finalizers, metav1.FinalizerDeleteDependents) {
		return nil
	}
	patch := client.MergeFromWithOptions(job.DeepCopy(), client.MergeFromWithOptimisticLock{})
	job.Finalizers = slices.DeleteFunc(job.Finalizers, func(f string) bool {
		return f == metav1.FinalizerOrphanDependents || f == metav1.FinalizerDeleteDependents
	})
	if err := e.client.Patch(ctx, job, patch); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the garbage collector's finalizers from Job %s: %w", klog.KObj(job), err)
	}
	return nil
}

// expire deletes a finished Job once its ttlSecondsAfterFinished has passed, as the TTL
// controller would; its pods are only local, so Background propagation deletes it at once.
func (e *Executor) expire(ctx context.Context, job *batchv1.Job) (ctrl.Result, error) {
	expiry, ok := expiresAt(job)
	if !ok {
		return ctrl.Result{}, nil
	}
	if wait := time.Until(expiry); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	err := e.client.Delete(ctx, job,
		client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &job.UID})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return ctrl.Result{}, fmt.Errorf("deleting expired Job %s: %w", klog.KObj(job), err)
	}
	ctrl.LoggerFrom(ctx).V(1).Info("Deleted a finished Job after its TTL")
	return ctrl.Result{}, nil
}

func (e *Executor) isRunning(key types.NamespacedName, uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	run, ok := e.runs[key]
	return ok && run.uid == uid
}

func (e *Executor) hasSeen(uid types.UID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[uid]
}

// stopRun stops the run of the Job under key, unless it is the Job keep (a UID), and waits for
// its pods to end.
func (e *Executor) stopRun(key types.NamespacedName, keep types.UID, cause error) {
	e.mu.Lock()
	run, ok := e.runs[key]
	e.mu.Unlock()
	if !ok || (keep != "" && run.uid == keep) {
		return
	}
	run.stop(cause)
	<-run.done
}

// start claims the Job by writing its startTime (refused if anyone wrote status since we read
// it) and runs it in the background.
func (e *Executor) start(ctx context.Context, job *batchv1.Job) error {
	now := time.Now()
	markStarted(&job.Status, now)
	setProgress(&job.Status, isIndexed(job), progress{})
	if err := e.client.Status().Update(ctx, job); err != nil {
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
			// Someone changed the Job since it was read: the next event decides again.
			return nil
		}
		return fmt.Errorf("recording the start of Job %s: %w", klog.KObj(job), err)
	}

	runCtx, stop := context.WithCancelCause(e.base)
	stopDeadline := func() {}
	if deadline := job.Spec.ActiveDeadlineSeconds; deadline != nil {
		runCtx, stopDeadline = context.WithDeadlineCause(runCtx, now.Add(time.Duration(*deadline)*time.Second), errDeadline)
	}
	run := &jobRun{uid: job.UID, stop: stop, done: make(chan struct{})}
	key := client.ObjectKeyFromObject(job)
	e.mu.Lock()
	e.runs[key] = run
	e.seen[job.UID] = true
	e.mu.Unlock()

	e.running.Add(1)
	log := e.opts.Logger.WithValues("job", klog.KObj(job))
	go func() {
		defer e.running.Done()
		defer close(run.done)
		defer stop(nil)
		defer stopDeadline()
		defer func() {
			e.mu.Lock()
			if e.runs[key] == run {
				delete(e.runs, key)
			}
			e.mu.Unlock()
		}()
		e.runJob(logr.NewContext(runCtx, log), job.DeepCopy())
	}()
	return nil
}
