package executor

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestMountVolumesMirrorsTheContainersPathsInTheSandbox(t *testing.T) {
	g := NewWithT(t)
	sandbox, claim, secret := t.TempDir(), t.TempDir(), t.TempDir()
	g.Expect(os.WriteFile(filepath.Join(secret, "token"), []byte("s3cret"), 0o600)).To(Succeed())
	container := &corev1.Container{VolumeMounts: []corev1.VolumeMount{
		{Name: "data", MountPath: "/data"},
		{Name: "data", MountPath: "/var/lib/users", SubPath: "users/ann"},
		{Name: "creds", MountPath: "/etc/token", SubPath: "token", ReadOnly: true},
	}}

	g.Expect(mountVolumes(sandbox, container, map[string]string{"data": claim, "creds": secret})).To(Succeed())
	g.Expect(os.WriteFile(filepath.Join(sandbox, "data", "x"), []byte("1"), 0o644)).To(Succeed())
	g.Expect(filepath.Join(claim, "x")).To(BeAnExistingFile())
	g.Expect(filepath.Join(claim, "users", "ann")).To(BeADirectory(), "a missing subPath is created")
	token, err := os.ReadFile(filepath.Join(sandbox, "etc", "token"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(string(token)).To(Equal("s3cret"))
}

func TestMountVolumesRefusesWhatItCannotMirror(t *testing.T) {
	for name, mounts := range map[string][]corev1.VolumeMount{
		"nested":        {{Name: "a", MountPath: "/data"}, {Name: "b", MountPath: "/data/inner"}},
		"root":          {{Name: "a", MountPath: "/"}},
		"unknownVolume": {{Name: "nowhere", MountPath: "/x"}},
	} {
		t.Run(name, func(t *testing.T) {
			dirs := map[string]string{"a": t.TempDir(), "b": t.TempDir()}
			err := mountVolumes(t.TempDir(), &corev1.Container{VolumeMounts: mounts}, dirs)
			config, ok := err.(*configError)
			if !ok || config.reason != ReasonUnsupportedPodTemplate {
				t.Fatalf("got %v, want an UnsupportedPodTemplate error", err)
			}
		})
	}
}

func TestWriteVolumeFilesWritesTheItemsWithTheirModes(t *testing.T) {
	g := NewWithT(t)
	dir := t.TempDir()
	data := map[string][]byte{"config.yaml": []byte("a: 1"), "other": []byte("no")}
	items := []corev1.KeyToPath{{Key: "config.yaml", Path: "conf/app.yaml", Mode: ptr.To[int32](0o600)}}
	g.Expect(writeVolumeFiles(dir, data, items, ptr.To[int32](0o640), nil)).To(Succeed())
	info, err := os.Stat(filepath.Join(dir, "conf", "app.yaml"))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)))
	g.Expect(filepath.Join(dir, "other")).NotTo(BeAnExistingFile(), "only the items listed are written")

	all := t.TempDir()
	g.Expect(writeVolumeFiles(all, data, nil, nil, nil)).To(Succeed())
	g.Expect(filepath.Join(all, "other")).To(BeAnExistingFile())

	missingKey := func(key string) error { return missing(ReasonSecretKeyNotFound, "Key %q not found", key) }
	err = writeVolumeFiles(t.TempDir(), data, []corev1.KeyToPath{{Key: "absent", Path: "x"}}, nil, missingKey)
	g.Expect(err).To(MatchError(`Key "absent" not found`))

	escape := t.TempDir()
	g.Expect(writeVolumeFiles(filepath.Join(escape, "vol"), data, []corev1.KeyToPath{{Key: "other", Path: "../../outside"}}, nil, nil)).To(Succeed())
	g.Expect(filepath.Join(escape, "outside")).NotTo(BeAnExistingFile(), "an item's path stays inside its volume")
}

func TestPodFields(t *testing.T) {
	fields := podFields{
		name: "cycle-0-0", namespace: "team", serviceAccount: "runner",
		labels:      map[string]string{"app": "chainsync"},
		annotations: map[string]string{podIndexAnnotation: "0"},
	}
	for path, want := range map[string]string{
		"metadata.name":          "cycle-0-0",
		"metadata.namespace":     "team",
		"metadata.labels['app']": "chainsync",
		"metadata.annotations['batch.kubernetes.io/job-completion-index']": "0",
		"spec.serviceAccountName": "runner",
	} {
		if got, ok := fields.get(path); !ok || got != want {
			t.Errorf("get(%s) = %q, %v; want %q", path, got, ok, want)
		}
	}
	if _, ok := fields.get("status.phase"); ok {
		t.Error("status.phase should not be provided")
	}
}

func TestLastLinesKeepsTheEndOfTheOutput(t *testing.T) {
	g := NewWithT(t)
	f, err := os.Create(filepath.Join(t.TempDir(), "output.log"))
	g.Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	for i := range 2000 {
		_, _ = f.WriteString(strings.Repeat("x", i%7) + "line\n")
	}
	_, _ = f.WriteString("the error that matters\n")
	tail := lastLines(f)
	lines := strings.Split(tail, "\n")
	g.Expect(lines).To(HaveLen(tailLines))
	g.Expect(lines[len(lines)-1]).To(Equal("the error that matters"))
}
