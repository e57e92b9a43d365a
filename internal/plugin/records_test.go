package plugin_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/plugin"
	"github.com/chainsync/chainsync/internal/records"
)

// executorLogs reads what the local executor kept of a Job's pod, where a cluster has pods/log;
// it keeps the Job as the plugin created it.
type executorLogs struct {
	job *batchv1.Job
}

func (e *executorLogs) JobLogs(_ context.Context, job *batchv1.Job) (string, error) {
	e.job = job.DeepCopy()
	logs, err := filepath.Glob(filepath.Join(executor.PodDir(dataDir, job.Namespace, job.Name+"-*"), "output.log"))
	if err != nil || len(logs) != 1 {
		return "", fmt.Errorf("want one pod output of Job %s, found %v (%v)", job.Name, logs, err)
	}
	raw, err := os.ReadFile(logs[0])
	return string(raw), err
}

// storeNamespace is a namespace with what a cycle needs to run there (the cycles' service
// account, the store's claim) and a user whose last cycle reported a failed item in the store.
func storeNamespace(t *testing.T) string {
	t.Helper()
	g := NewWithT(t)
	ns := namespace(t)
	g.Expect(k8s.Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns,
		Labels: map[string]string{syncv1alpha1.CycleServiceAccountLabel: "true"}}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "records", Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}}}})).To(Succeed())
	g.Expect(k8s.Create(ctx(t), csvPolicy(ns, "import-csv"))).To(Succeed())
	userOn(t, ns, "alice", "import-csv", "", syncv1alpha1.SyncUserStatus{Policy: "import-csv"})
	userOn(t, ns, "nobody", "import-csv", "", syncv1alpha1.SyncUserStatus{Policy: "import-csv"})

	store, err := records.Open(filepath.Join(executor.ClaimDir(dataDir, ns, "records"), "store"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(store.PutCycleReport("alice@example.com", records.CycleReport{CycleID: "import-csv-1a2b3c4d5e", Policy: "import-csv",
		Mode: "Initial", CompletionTime: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
		Items: []records.ItemReport{{Entity: "people", Outcome: records.Outcome("Error"),
			Source: records.ItemSide{Endpoint: "hr", Key: "E-17"}, Target: records.ItemSide{Endpoint: "directory"},
			Reason: "UNIQUE constraint failed: people.mail"}}})).To(Succeed())
	return ns
}

func TestRecordsRunsAReadOnlyJobAndPrintsTheUsersRecords(t *testing.T) {
	g := NewWithT(t)
	ns := storeNamespace(t)
	var out, errOut strings.Builder
	logs := &executorLogs{}
	opts := plugin.RecordsOptions{Client: k8s, Namespace: ns, Logs: logs, Out: &out, Err: &errOut, Poll: 100 * time.Millisecond}

	// Without --image, the image is the one cycles run: there is no cycle Job yet.
	err := plugin.Records(ctx(t), "alice", opts)
	g.Expect(err).To(MatchError("no cycle Job in namespace " + ns + " to take the chainsync image from: pass --image (the operator's --cycle-image)"))

	// A cycle Job the operator launched (not run here: the executor takes only managed ones).
	g.Expect(k8s.Create(ctx(t), &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "import-csv-0123456789", Namespace: ns,
		Labels: map[string]string{syncv1alpha1.PolicyLabel: "import-csv"}},
		Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "cycle", Image: "registry.example/chainsync:v1.4.0", ImagePullPolicy: corev1.PullIfNotPresent}}}}}})).To(Succeed())

	g.Expect(plugin.Records(ctx(t), "alice", opts)).To(Succeed())
	g.Expect(out.String()).To(HavePrefix("User:   alice@example.com\nNo pairs synced yet.\n"))
	g.Expect(out.String()).To(ContainSubstring("Cycle import-csv-1a2b3c4d5e (Initial) of policy import-csv, finished 2026-12-02T10:00:00Z"))
	g.Expect(out.String()).To(MatchRegexp(`error\s+people\s+E-17\s+-\s+UNIQUE constraint failed: people.mail`))
	job := logs.job
	g.Expect(errOut.String()).To(Equal(fmt.Sprintf(
		"job/%s created: reads the records of alice@example.com in the store of SyncPolicy import-csv (claim records)\njob/%s deleted\n", job.Name, job.Name)))

	// The Job as it ran: the cycles' image and user, the store's claim read-only, nothing else.
	g.Expect(job.Name).To(HavePrefix("alice-records-"))
	g.Expect(job.Labels).NotTo(HaveKey(syncv1alpha1.PolicyLabel), "the operator must not take it for a cycle")
	pod := job.Spec.Template.Spec
	g.Expect(pod.Containers).To(HaveLen(1))
	c := pod.Containers[0]
	g.Expect(c.Image).To(Equal("registry.example/chainsync:v1.4.0"))
	g.Expect(c.ImagePullPolicy).To(Equal(corev1.PullIfNotPresent))
	g.Expect(append(c.Command, c.Args...)).To(Equal([]string{"/chainsync", "records",
		"--store=/chainsync/volumes/records/store", "--output=table", "show", "--", "alice@example.com"}))
	g.Expect(c.VolumeMounts).To(Equal([]corev1.VolumeMount{{Name: "store", MountPath: "/chainsync/volumes/records", ReadOnly: true}}))
	g.Expect(pod.Volumes).To(HaveLen(1))
	g.Expect(pod.Volumes[0].PersistentVolumeClaim).To(Equal(&corev1.PersistentVolumeClaimVolumeSource{ClaimName: "records", ReadOnly: true}))
	g.Expect(*pod.SecurityContext.RunAsNonRoot).To(BeTrue())
	g.Expect(*pod.SecurityContext.RunAsUser).To(Equal(int64(65532)))
	g.Expect(pod.SecurityContext.FSGroup).To(BeNil(), "an fsGroup would have the kubelet change the store's files")
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
	g.Expect(pod.ServiceAccountName).To(Equal("chainsync-cycle"), "the account admission lets cycles run as")
	g.Expect(*pod.AutomountServiceAccountToken).To(BeFalse())
	g.Expect(*job.Spec.BackoffLimit).To(BeZero())
	g.Expect(*job.Spec.ActiveDeadlineSeconds).To(Equal(int64(120)))

	g.Eventually(func() error {
		return k8s.Get(ctx(t), client.ObjectKeyFromObject(job), &batchv1.Job{})
	}).Should(MatchError(ContainSubstring("not found")), "the Job is deleted")
}

func TestRecordsOfAUserWithoutRecordsFailsWithTheReadersWords(t *testing.T) {
	g := NewWithT(t)
	ns := storeNamespace(t)
	var out, errOut strings.Builder
	err := plugin.Records(ctx(t), "nobody", plugin.RecordsOptions{Client: k8s, Namespace: ns, Logs: &executorLogs{},
		Image: "chainsync:test", Out: &out, Err: &errOut, Poll: 100 * time.Millisecond})
	g.Expect(err).To(MatchError(MatchRegexp(`^job/nobody-records-\w+ failed: .*exited with code 1`)))
	g.Expect(errOut.String()).To(ContainSubstring("nobody@example.com"), "the reader's own error is shown")
	g.Expect(out.String()).To(BeEmpty())

	err = plugin.Records(ctx(t), "ghost", plugin.RecordsOptions{Client: k8s, Namespace: ns, Logs: &executorLogs{}, Image: "x", Out: &out, Err: &errOut})
	g.Expect(err).To(MatchError("no SyncUser ghost in namespace " + ns))
}

// The command line's records USER reads the logs through pods/log; envtest has no pods, so it
// gets as far as saying so once the Job ran.
func TestRecordsCommandRunsTheJobInTheNamespaceOfTheFlags(t *testing.T) {
	g := NewWithT(t)
	ns := storeNamespace(t)
	out, errOut, code := chainsync(t, "records", "alice", "-n", ns, "--image", "chainsync:test")
	g.Expect(code).To(Equal(1))
	g.Expect(out).To(BeEmpty())
	g.Expect(errOut).To(MatchRegexp(`job/alice-records-\w+ created: reads the records of alice@example.com`))
	g.Expect(errOut).To(MatchRegexp(`Job alice-records-\w+ has no pod left to read the logs of`))

	_, errOut, code = chainsync(t, "records", "alice", "--store", "/tmp/x", "-n", ns)
	g.Expect(code).To(Equal(1))
	g.Expect(errOut).To(ContainSubstring("records USER reads the store in the cluster; with --store, say records --store /tmp/x show alice"))
}
