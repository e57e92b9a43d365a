// Package executor runs chainsync's Jobs where there is no kubelet: in envtest, which runs only
// kube-apiserver and etcd, and in `chainsync local`. It is a test harness; nothing in the
// operator depends on it.
//
// It watches the Jobs labelled app.kubernetes.io/managed-by=chainsync (in every namespace, or
// in Options.Namespaces) and plays the Job controller and the kubelet for them: it runs what the
// pod template says, as a local process (ProcessRunner) or as a Go function call
// (InProcessRunner), and reports the Job's progress and end through its status subresource as
// the Job controller does, so the operator and kstatus read it as they would on a cluster.
//
// # Adding it to a manager
//
//	exec, err := executor.New(mgr.GetConfig(), executor.Options{DataDir: dir, Runner: runner})
//	...
//	err = exec.SetupWithManager(mgr)
//
// The executor reads and writes through its own direct client; only the watch on Jobs goes
// through the manager's cache. It runs without leader election, as a node would, and stops every
// pod when the manager stops. Its credentials need, on Jobs: list, watch, get, update and patch,
// delete, and update of jobs/status; get on Secrets, ConfigMaps, PersistentVolumeClaims and
// ServiceAccounts; create on serviceaccounts/token (envtest's admin has them all).
//
// # The pod template
//
// The template must have exactly one container, with a command (the executor cannot know an
// image's entrypoint), and no init containers.
//
//   - Command and args are run with $(VAR) references expanded, as Kubernetes does (and
//     --fs-root inserted for chainsync, see below).
//   - Env: plain values, valueFrom secretKeyRef and configMapKeyRef, fieldRef (metadata.name,
//     namespace, labels['k'], annotations['k'], spec.serviceAccountName), and envFrom secretRef
//     and configMapRef, honouring optional. An Indexed Job's pods get JOB_COMPLETION_INDEX and the
//     batch.kubernetes.io/job-completion-index label and annotation. Nothing is inherited from
//     the executor's environment but PATH, when the template sets none; HOME is the sandbox and
//     HOSTNAME the pod's name, unless the template sets them.
//   - Volumes: persistentVolumeClaim is the local directory <DataDir>/<namespace>/pvc/<claim>
//     (ClaimDir), shared by every pod of that claim; secret and configMap are their keys (or
//     items) written as files; emptyDir is a fresh directory; hostPath is the host's path.
//     volumeMounts honour subPath; readOnly cannot be enforced on a local process and is
//     ignored. Mount paths nested inside another mount are refused.
//   - The ServiceAccount (serviceAccountName, or "default") must exist, as on a cluster. envtest
//     runs no controller creating "default" in each namespace, so a template without
//     serviceAccountName needs one created.
//
// Not enforced on a local process, and ignored: readOnly mounts, the security context
// (readOnlyRootFilesystem, runAsNonRoot, capabilities, seccomp), resources, probes, the image.
// A test passing here proves nothing about them.
//
// A reference to something that does not exist (Secret, ConfigMap, key, PersistentVolumeClaim,
// ServiceAccount), or a template the executor cannot run, fails the Job at once with a reason
// naming it (SecretNotFound, PersistentVolumeClaimNotFound, ... see the Reason constants) and a
// message naming the object. On a cluster such a pod would wait forever; failing says why sooner.
//
// # The sandbox: --fs-root
//
// A local process cannot see the container's mount paths, so each pod gets a sandbox directory
// mirroring the container's filesystem: for every volumeMount, <sandbox>/<mountPath> is a symlink
// to the volume's local directory. A chainsync command (chainsync, /chainsync or any path ending
// in /chainsync) gets --fs-root=<sandbox> as its first argument, before its subcommand, and
// prefixes the absolute paths it opens with it: /data/records is <sandbox>/data/records. Every
// process also gets CHAINSYNC_FS_ROOT=<sandbox>, for scripts. A container's workingDir is the
// same path in the sandbox (a process runs there; an in-process function has no working
// directory of its own).
//
// # API access: KUBECONFIG
//
// Unless automountServiceAccountToken is false (on the pod or the ServiceAccount), the process
// gets KUBECONFIG, the path of a kubeconfig file in the sandbox whose context authenticates as
// the pod's ServiceAccount, with a token minted through the TokenRequest API
// (serviceaccounts/token) and the pod's namespace as default namespace. envtest's kube-apiserver
// has a service-account signing key and issuer, so RBAC applies to the process exactly as it
// would to the pod. KUBERNETES_SERVICE_HOST is not set: in-cluster configuration fails rather than
// reaching for files that are not there.
//
// # What a Job does here
//
//   - completions and parallelism, NonIndexed and Indexed: each index runs until it succeeds, at
//     most parallelism at once, and at most Options.MaxConcurrentPods over all Jobs. A work-queue
//     Job (completions unset) runs as one completion.
//   - backoffLimit: a failed pod is run again at once (without the Job controller's growing delay)
//     until the Job's failures exceed backoffLimit; the Job then fails with BackoffLimitExceeded
//     and the last lines of the last failed pod's output in the message.
//   - activeDeadlineSeconds, counted from startTime: the pods are stopped and the Job fails with
//     DeadlineExceeded.
//   - suspend: a suspended Job is not started. Suspending a running Job does not stop it.
//   - Stopping a pod (deadline, Job deleted, manager stopping) sends SIGTERM to its process group,
//     then SIGKILL after terminationGracePeriodSeconds (default 30s). An in-process function sees
//     its context cancelled, and is abandoned if it has not returned by then.
//   - Status, as the Job controller writes it: startTime first (the API server never lets it
//     change, which makes it the executor's claim on the Job), then active, ready, succeeded,
//     failed and completedIndexes as pods start and end; at the end SuccessCriteriaMet then
//     Complete with completionTime, or FailureTarget then Failed (the v1.36 API server refuses
//     Complete without SuccessCriteriaMet and completionTime, Failed without FailureTarget,
//     completionTime on a Job that is not Complete, and a finished Job with active pods).
//   - Not honoured: backoffLimitPerIndex, maxFailedIndexes, podFailurePolicy, successPolicy,
//     and changes to parallelism once a Job runs.
//   - ttlSecondsAfterFinished: a finished Job is deleted, with Background propagation, once the
//     TTL has passed since its Complete or Failed condition, as the TTL controller would.
//
// # Files
//
//	<DataDir>/<namespace>/pvc/<claim>/               a claim's volume (ClaimDir)
//	<DataDir>/<namespace>/pods/<pod>/output.log      a pod's stdout and stderr, kept (PodDir)
//	<DataDir>/<namespace>/pods/<pod>/root/           its sandbox, removed when it ends
//	<DataDir>/<namespace>/pods/<pod>/volumes/<name>/ its emptyDir, secret and configMap volumes, removed when it ends
//
// Pods are named <job>-<index>-<attempt>.
//
// # Never running a Job twice
//
// A Job is started only if it has no startTime, and the write of startTime is refused if the Job
// changed since it was read. A Job that has a startTime but is not running under this executor
// was started by a previous one, whose processes are gone (a ProcessRunner's process is killed
// when the executor dies, on Linux): it is failed with ExecutorRestarted, its active pods counted
// as failed, rather than run again. One executor per API server (or per set of namespaces) is
// assumed, as there is one Job controller.
//
// # What envtest does not do
//
// There is no garbage collector: owner references do not cascade, so deleting a SyncPolicy
// leaves its Jobs, and a Job deleted with the batch/v1 default (orphan) or foreground
// propagation would stay with its finalizer forever. The executor removes those two finalizers
// from its Jobs once their pods have stopped, as the garbage collector would (its pods are not
// API objects, so there is nothing to orphan). There are no Pod objects and no Events.
package executor
