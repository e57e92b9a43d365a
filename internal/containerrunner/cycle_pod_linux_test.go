//go:build linux

package containerrunner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/config"
	"github.com/chainsync/chainsync/controllers"
	"github.com/chainsync/chainsync/internal/containerrunner"
	"github.com/chainsync/chainsync/internal/executor"
	"github.com/chainsync/chainsync/internal/manager"
	"github.com/chainsync/chainsync/internal/testenv"
)

func TestMain(m *testing.M) {
	containerrunner.Init() // This test binary is also each container's init.
	os.Exit(m.Run())
}

// image is what the Dockerfile's final stage says of the image.
type image struct {
	// build is the go build command line of the build stage, output path left out.
	build []string
	// binary is where the final stage puts it; entrypoint and user are its ENTRYPOINT and USER.
	binary, entrypoint, user string
}

// readDockerfile takes from the Dockerfile what this test reproduces, so a change there is
// tested here: the build command, where the binary goes, the entrypoint and the user.
func readDockerfile(t *testing.T, root string) image {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	var img image
	var built string
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0:
		case fields[0] == "RUN" && strings.Contains(line, " go build "):
			// RUN CGO_ENABLED=0 go build -trimpath -ldflags=-s -o /out/chainsync .
			for i := 1; i < len(fields); i++ {
				if fields[i] == "-o" && i+1 < len(fields) {
					built = fields[i+1]
					i++
					continue
				}
				img.build = append(img.build, fields[i])
			}
		case fields[0] == "COPY" && len(fields) == 4 && fields[1] == "--from=build" && fields[2] == built:
			img.binary = fields[3]
		case fields[0] == "ENTRYPOINT":
			var ep []string
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "ENTRYPOINT")), &ep); err != nil || len(ep) != 1 {
				t.Fatalf("ENTRYPOINT %q: want the exec form with the binary alone", line)
			}
			img.entrypoint = ep[0]
		case fields[0] == "USER":
			img.user = fields[1]
		}
	}
	if len(img.build) == 0 || img.binary == "" || img.entrypoint == "" || !regexp.MustCompile(`^\d+:\d+$`).MatchString(img.user) {
		t.Fatalf("the Dockerfile no longer reads as this test expects (build %v, binary %q, entrypoint %q, user %q)",
			img.build, img.binary, img.entrypoint, img.user)
	}
	return img
}

// buildImage builds the binary as the Dockerfile does and lays out a directory as the image's
// filesystem: distroless static's nonroot user, its home and /tmp, the binary, and nothing else
// (no shell, no libc).
func buildImage(t *testing.T, root string, img image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "image")
	var env, args []string
	for i, f := range img.build {
		if f == "go" {
			env, args = img.build[:i], img.build[i+1:]
			break
		}
	}
	bin := filepath.Join(dir, img.binary)
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	last := len(args) - 1 // The package, after the flags.
	build := exec.Command("go", append(append(append([]string(nil), args[:last]...), "-o", bin), args[last:]...)...)
	build.Dir, build.Env = root, append(os.Environ(), env...)
	start := time.Now()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", build, err, out)
	}
	t.Logf("%s built the binary in %s", strings.Join(append(env, build.Args...), " "), time.Since(start).Round(time.Second))
	files := map[string]string{
		"etc/passwd": "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n",
		"etc/group":  "root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:65532:\n",
	}
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []struct {
		path string
		mode fs.FileMode
		uid  int
	}{{"home/nonroot", 0o700, 65532}, {"root", 0o700, 0}, {"tmp", 0o777 | fs.ModeSticky, 0}} {
		path := filepath.Join(dir, d.path)
		if err := os.MkdirAll(path, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, d.mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, d.uid, d.uid); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A cycle Job, as the operator builds it, runs the image's binary under the pod's constraints:
// its own root holding only the image's files, read-only; the pod's non-root user and fsGroup;
// no_new_privs and no capabilities; only the mounted volumes writable. It syncs a csv export
// into a csv directory and writes its records, as the cycle user, only in the record store.
//
// What this does not prove (no container engine runs here): the image's layers and their
// ownership, seccomp's RuntimeDefault profile, AppArmor or SELinux, cgroup limits, a network
// namespace of its own, and the kubelet's projected service account token (the executor's
// kubeconfig stands for it).
func TestCyclePodRunsAsTheImageUnderItsSecurityContext(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test confines a cycle as a container runtime would, which takes root (mount and PID " +
			"namespaces, bind mounts, chroot, another uid): run it as root, as CI and the development machine do")
	}
	g := NewWithT(t)
	repo, err := testenv.RepoRoot()
	g.Expect(err).NotTo(HaveOccurred())
	img := readDockerfile(t, repo)
	imageDir := buildImage(t, repo, img)

	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	env, err := testenv.Start()
	g.Expect(err).NotTo(HaveOccurred())
	t.Cleanup(func() { _ = env.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	k8s := env.Client

	const ns = "cycle-pod"
	dataDir := t.TempDir()
	runner := &containerrunner.Runner{
		Image: imageDir, User: img.user, Scratch: t.TempDir(),
		Pod: func(ctx context.Context, pod string) (*corev1.PodSpec, error) {
			var jobs batchv1.JobList
			if err := k8s.List(ctx, &jobs, client.InNamespace(ns)); err != nil {
				return nil, err
			}
			for _, j := range jobs.Items {
				if strings.HasPrefix(pod, j.Name+"-") {
					return &j.Spec.Template.Spec, nil
				}
			}
			return nil, fmt.Errorf("no Job of pod %s", pod)
		},
	}
	mgr, err := manager.New(env.Config, manager.Options{MetricsAddr: "0", ProbeAddr: "0"})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(controllers.SetupWithManager(ctx, mgr, controllers.Options{Jobs: controllers.CycleJobBuilder{Image: "chainsync:test"}})).To(Succeed())
	ex, err := executor.New(env.Config, executor.Options{DataDir: dataDir, Runner: runner, MaxConcurrentPods: 2})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(ex.SetupWithManager(mgr)).To(Succeed())
	go func() { _ = mgr.Start(ctx) }()

	// What a user sets up before applying a policy: the cycle service account and its role, and
	// two claims: the record store, and the exports the policy reads and writes.
	role, err := config.CycleClusterRole()
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(k8s.Create(ctx, role)).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns,
		Labels: map[string]string{syncv1alpha1.CycleServiceAccountLabel: "true"}}})).To(Succeed())
	g.Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "chainsync-cycle", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "chainsync-cycle", Namespace: ns}},
	})).To(Succeed())
	for _, claim := range []string{"records", "exports"} {
		g.Expect(k8s.Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: claim, Namespace: ns},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		})).To(Succeed())
	}
	exports := executor.ClaimDir(dataDir, ns, "exports")
	for _, dir := range []string{"hr", "directory"} {
		g.Expect(os.MkdirAll(filepath.Join(exports, dir), 0o755)).To(Succeed())
	}
	g.Expect(os.WriteFile(filepath.Join(exports, "hr", "employees.csv"), []byte("employee_id,email,first_name,owner\n"+
		"E1,ada@example.com,Ada,ada@example.com\nE2,bob@example.com,Bob,bob@example.com\n"), 0o644)).To(Succeed())

	scope := []syncv1alpha1.ScopeMatch{{Field: "owner", Identity: "email"}}
	policy := &syncv1alpha1.SyncPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "directory", Namespace: ns},
		Spec: syncv1alpha1.SyncPolicySpec{
			Source: syncv1alpha1.Endpoint{Name: "hr", Connector: syncv1alpha1.CSVConnector,
				CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{ClaimName: "exports", Path: "hr"}}},
			Target: syncv1alpha1.Endpoint{Name: "directory", Connector: syncv1alpha1.CSVConnector,
				CSV: &syncv1alpha1.CSVEndpoint{Directory: syncv1alpha1.VolumePath{ClaimName: "exports", Path: "directory"}}},
			Entities: []syncv1alpha1.Entity{{
				Name:   "people",
				Source: syncv1alpha1.Collection{Collection: "employees.csv", KeyFields: []string{"employee_id"}, Scope: scope},
				Target: syncv1alpha1.Collection{Collection: "people.csv", KeyFields: []string{"employee_number"}, Scope: scope},
				Fields: []syncv1alpha1.FieldMapping{{Source: "employee_id", Target: "employee_number"},
					{Source: "first_name", Target: "given_name"}, {Source: "email", Target: "mail"}},
				MatchOn: []string{"email"},
			}},
			Schedule:    syncv1alpha1.Schedule{Interval: "1h"},
			Store:       syncv1alpha1.RecordStore{ClaimName: "records"},
			JobTemplate: syncv1alpha1.CycleJobTemplate{UsersPerJob: 10, Parallelism: 1, Concurrency: 2},
		},
	}
	g.Expect(k8s.Create(ctx, policy)).To(Succeed())
	for _, name := range []string{"ada", "bob"} {
		g.Expect(k8s.Create(ctx, &syncv1alpha1.SyncUser{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: syncv1alpha1.SyncUserSpec{Identity: syncv1alpha1.UserIdentity{Email: name + "@example.com"},
				PolicyRef: &syncv1alpha1.PolicyReference{Name: policy.Name}},
		})).To(Succeed())
	}

	g.Eventually(func(g Gomega) {
		for _, name := range []string{"ada", "bob"} {
			u := &syncv1alpha1.SyncUser{}
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, u)).To(Succeed())
			c := u.Status.LastCycle
			g.Expect(c).NotTo(BeNil(), "%s has cycled (pod output: %s)", name, podOutputs(dataDir, ns))
			g.Expect(c.Failure).To(BeEmpty(), podOutputs(dataDir, ns))
			g.Expect(c.Items.Created).To(BeEquivalentTo(1), name)
		}
	}, 2*time.Minute, 250*time.Millisecond).Should(Succeed())
	people, err := os.ReadFile(filepath.Join(exports, "directory", "people.csv"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(people)).To(And(ContainSubstring("E1"), ContainSubstring("ada@example.com"), ContainSubstring("E2")))

	// The runner did what the Job the operator built asks for, and what the image says.
	var jobs batchv1.JobList
	g.Expect(k8s.List(ctx, &jobs, client.InNamespace(ns))).To(Succeed())
	g.Expect(jobs.Items).NotTo(BeEmpty())
	pod := jobs.Items[0].Spec.Template.Spec
	g.Expect(pod.Containers[0].Command).To(Equal([]string{img.entrypoint}), "the Job runs the image's entrypoint")
	g.Expect(img.entrypoint).To(Equal(img.binary))
	uid := strings.Split(img.user, ":")[0]
	g.Expect(fmt.Sprint(*pod.SecurityContext.RunAsUser)).To(Equal(uid), "the Job runs as the image's user")
	g.Expect(*pod.Containers[0].SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())

	reports := runner.Reports()
	g.Expect(reports).NotTo(BeEmpty())
	store := filepath.Join(executor.ClaimDir(dataDir, ns, "records"))
	for _, rep := range reports {
		ids := strings.Join([]string{uid, uid, uid, uid}, " ")
		g.Expect(rep.Status).To(HaveKeyWithValue("Uid", ids))
		g.Expect(rep.Status).To(HaveKeyWithValue("Gid", ids))
		g.Expect(rep.Status).To(HaveKeyWithValue("Groups", uid), "fsGroup alone")
		g.Expect(rep.Status).To(HaveKeyWithValue("NoNewPrivs", "1"))
		g.Expect(rep.Status).To(HaveKeyWithValue("CapEff", "0000000000000000"))
		g.Expect(rep.Status).To(HaveKeyWithValue("CapBnd", "0000000000000000"))
		for _, dir := range []string{"/", filepath.Dir(img.binary), "/etc", "/home/nonroot"} {
			g.Expect(rep.Writable).To(HaveKeyWithValue(dir, ContainSubstring("read-only file system")), "nothing writes in the image")
		}
		for _, m := range pod.Containers[0].VolumeMounts {
			g.Expect(rep.Writable).To(HaveKeyWithValue(m.MountPath, ""), "%s is writable", m.MountPath)
		}
	}

	// Every file the cycle's user wrote is in the record store or the target's directory; the
	// store has some; the container's root holds what the image held and the mount points.
	var inStore int
	g.Expect(filepath.WalkDir(filepath.Join(dataDir, ns, "pvc"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if fmt.Sprint(info.Sys().(*syscall.Stat_t).Uid) != uid {
			return nil
		}
		switch {
		case strings.HasPrefix(path, store+"/"):
			inStore++
		case strings.HasPrefix(path, filepath.Join(exports, "directory")+"/"):
		default:
			return fmt.Errorf("the cycle wrote %s, outside the store and the target", path)
		}
		return nil
	})).To(Succeed())
	g.Expect(inStore).To(BeNumerically(">", 0), "the cycle's user wrote the records")
	for _, rep := range reports {
		// The one file besides the image's is the mount point of the kubeconfig, created empty.
		g.Expect(filesIn(t, rep.Root)).To(ConsistOf(append(filesIn(t, imageDir), "var/run/secrets/chainsync.dev/kubeconfig")),
			"the root of pod %s holds the image's files, no more", rep.Pod)
	}
}

// filesIn lists the files (not directories) under dir, relative to it.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// podOutputs is what the pods printed, for a failure's message.
func podOutputs(dataDir, ns string) string {
	logs, _ := filepath.Glob(filepath.Join(executor.PodDir(dataDir, ns, "*"), "output.log"))
	var b strings.Builder
	for _, l := range logs {
		out, _ := os.ReadFile(l)
		fmt.Fprintf(&b, "\n%s:\n%s", filepath.Base(filepath.Dir(l)), out)
	}
	return b.String()
}
