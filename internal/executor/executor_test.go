package executor_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/testenv"
)

// Generous: the machine is shared and slow.
const wait = 60 * time.Second

var env *testenv.Env

func TestMain(m *testing.M) {
	var err error
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	env, err = testenv.Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	_ = env.Stop()
	os.Exit(code)
}

// cluster is a namespace of its own with an executor running its Jobs.
type cluster struct {
	t         *testing.T
	ctx       context.Context
	namespace string
	dataDir   string
	stop      func()
}

func startCluster(t *testing.T, runner executor.Runner) *cluster {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "executor-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, ctx: ctx, namespace: ns.Name, dataDir: t.TempDir()}
	c.stop = c.startExecutor(runner)
	t.Cleanup(c.stop)
	return c
}

// startExecutor starts a manager with an executor on the cluster's namespace and returns what
// stops it.
func (c *cluster) startExecutor(runner executor.Runner) (stop func()) {
	c.t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		c.t.Fatal(err)
	}
	exec, err := executor.New(env.Config, executor.Options{
		DataDir:    c.dataDir,
		Runner:     runner,
		Namespaces: []string{c.namespace},
	})
	if err != nil {
		c.t.Fatal(err)
	}
	if err := exec.SetupWithManager(mgr); err != nil {
		c.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(c.ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-stopped; err != nil {
				c.t.Errorf("the manager stopped with %v", err)
			}
		})
	}
}

func (c *cluster) create(objects ...client.Object) {
	c.t.Helper()
	for _, obj := range objects {
		obj.SetNamespace(c.namespace)
		if err := env.Client.Create(c.ctx, obj); err != nil {
			c.t.Fatalf("creating %T %s: %v", obj, obj.GetName(), err)
		}
	}
}

// job returns a Job of the operator's kind: labelled, one container running command.
func job(name string, command ...string) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:   name,
			Labels: map[string]string{executor.ManagedByLabel: executor.ManagedByValue},
		},
		Spec: batchv1.JobSpec{
			BackoffLimit: ptr.To[int32](0),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy:                 corev1.RestartPolicyNever,
				ServiceAccountName:            "cycle",
				TerminationGracePeriodSeconds: ptr.To[int64](5),
				Containers: []corev1.Container{{
					Name:    "cycle",
					Image:   "chainsync:test",
					Command: command,
				}},
			}},
		},
	}
}

func shell(name, script string) *batchv1.Job {
	return job(name, "sh", "-c", script)
}

func serviceAccount(name string) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func claim(name string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: resource.MustParse("1Gi"),
			}},
		},
	}
}

// withClaim mounts the claim at /data.
func withClaim(j *batchv1.Job, claimName string) *batchv1.Job {
	spec := &j.Spec.Template.Spec
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claimName},
	}})
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: "data", MountPath: "/data"})
	return j
}

func (c *cluster) status(name string) func() (batchv1.JobStatus, error) {
	return func() (batchv1.JobStatus, error) {
		var j batchv1.Job
		err := env.Client.Get(c.ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, &j)
		return j.Status, err
	}
}

func condition(kind batchv1.JobConditionType, reason string) OmegaMatcher {
	return HaveField("Conditions", ContainElement(And(
		HaveField("Type", kind),
		HaveField("Status", corev1.ConditionTrue),
		HaveField("Reason", reason),
	)))
}

func messageOf(status batchv1.JobStatus, kind batchv1.JobConditionType) string {
	for _, c := range status.Conditions {
		if c.Type == kind {
			return c.Message
		}
	}
	return ""
}

func alive(pid int) bool {
	return syscall.Kill(pid, 0) == nil
}

func readPID(path string) func() (int, error) {
	return func() (int, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(string(data)))
	}
}

func TestJobWritesIntoItsClaimWithEnvFromASecret(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(
		serviceAccount("cycle"),
		claim("records"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"token": "s3cret"}},
	)
	j := withClaim(shell("write", `printf '%s for %s' "$TOKEN" "$POD_NAMESPACE" > "$CHAINSYNC_FS_ROOT/data/out.txt"`), "records")
	j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{
		{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "creds"}, Key: "token",
		}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
	}
	c.create(j)

	g.Eventually(c.status("write"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
	status, _ := c.status("write")()
	g.Expect(status).To(condition(batchv1.JobSuccessCriteriaMet, batchv1.JobReasonCompletionsReached))
	g.Expect(status.Succeeded).To(Equal(int32(1)))
	g.Expect(status.Active).To(BeZero())
	g.Expect(status.StartTime).NotTo(BeNil())
	g.Expect(status.CompletionTime).NotTo(BeNil())

	content, err := os.ReadFile(filepath.Join(executor.ClaimDir(c.dataDir, c.namespace, "records"), "out.txt"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(content)).To(Equal("s3cret for " + c.namespace))
	// The sandbox, and the secret in it, is gone; the output is kept.
	g.Expect(filepath.Join(executor.PodDir(c.dataDir, c.namespace, "write-0-0"), "output.log")).To(BeAnExistingFile())
	g.Expect(filepath.Join(executor.PodDir(c.dataDir, c.namespace, "write-0-0"), "root")).NotTo(BeAnExistingFile())
}

func TestSecretAndConfigMapVolumesAndEnvFrom(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(
		serviceAccount("cycle"),
		claim("records"),
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"user": "ann", "password": "pw"}},
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "settings"}, Data: map[string]string{"mode": "fast", "unused": "x"}},
	)
	j := withClaim(shell("volumes", `cd "$CHAINSYNC_FS_ROOT" && `+
		`printf '%s %s %s %s %s' "$(cat etc/creds/password)" "$(cat etc/settings/conf/mode.txt)" "$CFG_mode" "$(ls etc/settings/conf)" "$(cat scratch/x 2>/dev/null || echo empty)" > data/out.txt`), "records")
	spec := &j.Spec.Template.Spec
	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: "creds", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds"}}},
		corev1.Volume{Name: "settings", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "settings"},
			Items:                []corev1.KeyToPath{{Key: "mode", Path: "conf/mode.txt"}},
		}}},
		corev1.Volume{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	)
	spec.Containers[0].VolumeMounts = append(spec.Containers[0].VolumeMounts,
		corev1.VolumeMount{Name: "creds", MountPath: "/etc/creds", ReadOnly: true},
		corev1.VolumeMount{Name: "settings", MountPath: "/etc/settings"},
		corev1.VolumeMount{Name: "scratch", MountPath: "/scratch"},
	)
	spec.Containers[0].EnvFrom = []corev1.EnvFromSource{
		{Prefix: "CFG_", ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}}},
		{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "absent"}, Optional: ptr.To(true)}},
	}
	c.create(j)

	g.Eventually(c.status("volumes"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
	content, err := os.ReadFile(filepath.Join(executor.ClaimDir(c.dataDir, c.namespace, "records"), "out.txt"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(content)).To(Equal("pw fast fast mode.txt empty"))
}

func TestIndexedJobRunsEachIndexOnceAtMostParallelismAtOnce(t *testing.T) {
	g := NewWithT(t)
	var (
		mu              sync.Mutex
		runs            = map[string]int{}
		running, most   int
		fsRootsExisting = true
		fsRootsPassed   = true
	)
	cycle := executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		mu.Lock()
		runs[env["JOB_COMPLETION_INDEX"]]++
		running++
		most = max(most, running)
		if _, err := os.Stat(env[executor.FSRootEnv]); err != nil {
			fsRootsExisting = false
		}
		if len(args) < 3 || args[1] != "--"+executor.FSRootFlag+"="+env[executor.FSRootEnv] || args[2] != "cycle" {
			fsRootsPassed = false
		}
		mu.Unlock()
		// Long enough for the executor to start every pod it would allow at once.
		time.Sleep(300 * time.Millisecond)
		mu.Lock()
		running--
		mu.Unlock()
		fmt.Fprintln(stdout, "synced", args)
		return 0
	})
	c := startCluster(t, cycle)
	c.create(serviceAccount("cycle"))
	j := job("indexed", "chainsync", "cycle")
	j.Spec.CompletionMode = ptr.To(batchv1.IndexedCompletion)
	j.Spec.Completions = ptr.To[int32](3)
	j.Spec.Parallelism = ptr.To[int32](2)
	c.create(j)

	g.Eventually(c.status("indexed"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
	status, _ := c.status("indexed")()
	g.Expect(status.CompletedIndexes).To(Equal("0-2"))
	g.Expect(status.Succeeded).To(Equal(int32(3)))
	g.Expect(status.Failed).To(BeZero())
	mu.Lock()
	defer mu.Unlock()
	g.Expect(runs).To(Equal(map[string]int{"0": 1, "1": 1, "2": 1}))
	g.Expect(most).To(Equal(2))
	g.Expect(fsRootsExisting).To(BeTrue())
	g.Expect(fsRootsPassed).To(BeTrue(), "chainsync gets its sandbox as --fs-root, before its subcommand")
}

func TestFailingCommandFailsTheJobAfterBackoffLimitWithItsOutput(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"), claim("records"))
	j := withClaim(shell("failing", `echo attempt >> "$CHAINSYNC_FS_ROOT/data/attempts"; echo starting; echo "cannot reach the endpoint" >&2; exit 3`), "records")
	j.Spec.BackoffLimit = ptr.To[int32](2)
	c.create(j)

	g.Eventually(c.status("failing"), wait).Should(condition(batchv1.JobFailed, batchv1.JobReasonBackoffLimitExceeded))
	status, _ := c.status("failing")()
	g.Expect(status).To(condition(batchv1.JobFailureTarget, batchv1.JobReasonBackoffLimitExceeded))
	g.Expect(status.Failed).To(Equal(int32(3)))
	g.Expect(status.Active).To(BeZero())
	g.Expect(status.CompletionTime).To(BeNil())
	message := messageOf(status, batchv1.JobFailed)
	g.Expect(message).To(ContainSubstring("exited with code 3"))
	g.Expect(message).To(ContainSubstring("cannot reach the endpoint"))

	attempts, err := os.ReadFile(filepath.Join(executor.ClaimDir(c.dataDir, c.namespace, "records"), "attempts"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(strings.Count(string(attempts), "attempt")).To(Equal(3))
	g.Expect(filepath.Join(executor.PodDir(c.dataDir, c.namespace, "failing-0-2"), "output.log")).To(BeAnExistingFile())
}

func TestMissingReferencesFailTheJobNamingThem(t *testing.T) {
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "creds"}, StringData: map[string]string{"token": "x"}})
	secretEnv := func(name, key string) *batchv1.Job {
		j := shell("secret-"+name+"-"+key, "true")
		j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TOKEN", ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key},
		}}}
		return j
	}
	noServiceAccount := shell("no-service-account", "true")
	noServiceAccount.Spec.Template.Spec.ServiceAccountName = "nobody"
	noConfigMap := shell("no-configmap", "true")
	noConfigMap.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "settings", VolumeSource: corev1.VolumeSource{
		ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "settings"}},
	}}}

	for _, tc := range []struct {
		job     *batchv1.Job
		reason  string
		message string
	}{
		{secretEnv("absent", "token"), executor.ReasonSecretNotFound, `Secret "absent" not found`},
		{secretEnv("creds", "password"), executor.ReasonSecretKeyNotFound, `Key "password" not found in Secret "creds"`},
		{withClaim(shell("no-claim", "true"), "records"), executor.ReasonPersistentVolumeClaimNotFound, `PersistentVolumeClaim "records" not found`},
		{noServiceAccount, executor.ReasonServiceAccountNotFound, `ServiceAccount "nobody" not found`},
		{noConfigMap, executor.ReasonConfigMapNotFound, `ConfigMap "settings" not found`},
	} {
		t.Run(tc.job.Name, func(t *testing.T) {
			g := NewWithT(t)
			c.create(tc.job)
			g.Eventually(c.status(tc.job.Name), wait).Should(condition(batchv1.JobFailed, tc.reason))
			status, _ := c.status(tc.job.Name)()
			g.Expect(messageOf(status, batchv1.JobFailed)).To(ContainSubstring(tc.message))
		})
	}
}

func TestActiveDeadlineStopsASleepingProcess(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"), claim("records"))
	j := withClaim(shell("sleepy", `echo $$$$ > "$CHAINSYNC_FS_ROOT/data/pid"; exec sleep 600`), "records")
	j.Spec.ActiveDeadlineSeconds = ptr.To[int64](3)
	c.create(j)

	// $$$$ is the shell's $$: Kubernetes expands $$ in args to $.
	pid := filepath.Join(executor.ClaimDir(c.dataDir, c.namespace, "records"), "pid")
	g.Eventually(readPID(pid), wait).ShouldNot(BeZero())
	process, _ := readPID(pid)()
	g.Eventually(c.status("sleepy"), wait).Should(condition(batchv1.JobFailed, batchv1.JobReasonDeadlineExceeded))
	g.Expect(alive(process)).To(BeFalse())
	status, _ := c.status("sleepy")()
	g.Expect(status.Active).To(BeZero())
	g.Expect(status.Failed).To(Equal(int32(1)))
}

func TestDeletingARunningJobStopsItsProcessEvenIfItIgnoresSIGTERM(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"), claim("records"))
	j := withClaim(shell("stubborn", `trap '' TERM; echo $$$$ > "$CHAINSYNC_FS_ROOT/data/pid"; while true; do sleep 1; done`), "records")
	j.Spec.Template.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	c.create(j)

	pid := filepath.Join(executor.ClaimDir(c.dataDir, c.namespace, "records"), "pid")
	g.Eventually(readPID(pid), wait).ShouldNot(BeZero())
	process, _ := readPID(pid)()
	g.Eventually(c.status("stubborn"), wait).Should(HaveField("Active", int32(1)))

	// The batch/v1 default propagation (orphan) leaves a finalizer that only a garbage collector
	// removes: the executor does, once the process has stopped.
	g.Expect(env.Client.Delete(c.ctx, j)).To(Succeed())
	g.Eventually(func() bool { return alive(process) }, wait).Should(BeFalse())
	g.Eventually(func() error {
		return env.Client.Get(c.ctx, client.ObjectKeyFromObject(j), &batchv1.Job{})
	}, wait).Should(Satisfy(apierrors.IsNotFound))
}

func TestServiceAccountKubeconfigIsLimitedByRBAC(t *testing.T) {
	g := NewWithT(t)
	type outcome struct {
		user          string
		getConfigMap  error
		listSecrets   error
		kubeconfigSet bool
	}
	seen := make(chan outcome, 1)
	cycle := executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		var o outcome
		defer func() { seen <- o }()
		o.kubeconfigSet = strings.HasPrefix(env["KUBECONFIG"], env[executor.FSRootEnv])
		cfg, err := clientcmd.BuildConfigFromFlags("", env["KUBECONFIG"])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		clientset, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		review, err := clientset.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		if err == nil {
			o.user = review.Status.UserInfo.Username
		}
		_, o.getConfigMap = clientset.CoreV1().ConfigMaps(env["NAMESPACE"]).Get(ctx, "allowed", metav1.GetOptions{})
		_, o.listSecrets = clientset.CoreV1().Secrets(env["NAMESPACE"]).List(ctx, metav1.ListOptions{})
		return 0
	})
	c := startCluster(t, cycle)
	c.create(
		serviceAccount("reader"),
		&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "allowed"}},
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Name: "read-configmaps"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "reader-reads-configmaps"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "read-configmaps"},
			Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: c.namespace}},
		},
	)
	j := job("rbac", "chainsync", "cycle")
	j.Spec.Template.Spec.ServiceAccountName = "reader"
	j.Spec.Template.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "NAMESPACE", ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"},
	}}}
	c.create(j)

	var o outcome
	g.Eventually(seen, wait).Should(Receive(&o))
	g.Expect(o.kubeconfigSet).To(BeTrue(), "KUBECONFIG should be a file in the sandbox")
	g.Expect(o.user).To(Equal("system:serviceaccount:" + c.namespace + ":reader"))
	g.Expect(o.getConfigMap).NotTo(HaveOccurred())
	g.Expect(apierrors.IsForbidden(o.listSecrets)).To(BeTrue(), "listing Secrets should be forbidden, got %v", o.listSecrets)
	g.Eventually(c.status("rbac"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
}

func TestFinishedJobsAreDeletedAfterTheirTTL(t *testing.T) {
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"))
	succeeding, failing := shell("succeeds", "true"), shell("fails", "exit 1")
	for _, j := range []*batchv1.Job{succeeding, failing} {
		j.Spec.TTLSecondsAfterFinished = ptr.To[int32](1)
	}
	kept := shell("kept", "true")
	c.create(succeeding, failing, kept)

	g := NewWithT(t)
	for _, j := range []*batchv1.Job{succeeding, failing} {
		g.Eventually(func() error {
			return env.Client.Get(c.ctx, client.ObjectKeyFromObject(j), &batchv1.Job{})
		}, wait).Should(Satisfy(apierrors.IsNotFound), "Job %s should be deleted", j.Name)
	}
	g.Eventually(c.status("kept"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
}

func TestSuspendedJobStartsOnlyWhenResumed(t *testing.T) {
	g := NewWithT(t)
	c := startCluster(t, executor.ProcessRunner{})
	c.create(serviceAccount("cycle"))
	j := shell("suspended", "true")
	j.Spec.Suspend = ptr.To(true)
	c.create(j)

	g.Consistently(c.status("suspended"), 2*time.Second).Should(HaveField("StartTime", BeNil()))
	g.Expect(env.Client.Patch(c.ctx, j, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"suspend":false}}`)))).To(Succeed())
	g.Eventually(c.status("suspended"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
}

func TestAJobStartedByAStoppedExecutorFailsInsteadOfRunningTwice(t *testing.T) {
	g := NewWithT(t)
	var (
		mu     sync.Mutex
		starts int
	)
	cycle := executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		mu.Lock()
		starts++
		mu.Unlock()
		<-ctx.Done()
		return 143
	})
	c := startCluster(t, cycle)
	c.create(serviceAccount("cycle"))
	c.create(job("interrupted", "chainsync", "cycle"))
	g.Eventually(func() int {
		mu.Lock()
		defer mu.Unlock()
		return starts
	}, wait).Should(Equal(1))
	g.Eventually(c.status("interrupted"), wait).Should(HaveField("Active", int32(1)))

	c.stop()
	restarted := c.startExecutor(cycle)
	t.Cleanup(restarted)

	g.Eventually(c.status("interrupted"), wait).Should(condition(batchv1.JobFailed, executor.ReasonExecutorRestarted))
	status, _ := c.status("interrupted")()
	g.Expect(status.Active).To(BeZero())
	g.Expect(status.Failed).To(Equal(int32(1)))
	mu.Lock()
	defer mu.Unlock()
	g.Expect(starts).To(Equal(1))
}

func TestNoKubeconfigWithoutAutomountedToken(t *testing.T) {
	g := NewWithT(t)
	kubeconfigs := make(chan string, 1)
	cycle := executor.InProcessRunner(func(ctx context.Context, args []string, env map[string]string, stdout, stderr io.Writer) int {
		kubeconfigs <- env["KUBECONFIG"]
		return 0
	})
	c := startCluster(t, cycle)
	c.create(serviceAccount("cycle"))
	j := job("no-token", "chainsync", "cycle")
	j.Spec.Template.Spec.AutomountServiceAccountToken = ptr.To(false)
	c.create(j)

	g.Eventually(kubeconfigs, wait).Should(Receive(BeEmpty()))
	g.Eventually(c.status("no-token"), wait).Should(condition(batchv1.JobComplete, batchv1.JobReasonCompletionsReached))
}
