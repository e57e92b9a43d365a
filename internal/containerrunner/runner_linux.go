//go:build linux

package containerrunner

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/chainsync/chainsync/internal/executor"
)

// initEnv carries a container's initSpec to its init, the runner's own executable started anew.
const initEnv = "CHAINSYNC_CONTAINER_INIT"

// Runner runs the executor's containers confined as a container runtime would (see the package
// doc). Its zero value is not usable: Image, Scratch, User and Pod are required.
type Runner struct {
	// Image is a directory laid out as the image's filesystem.
	Image string
	// User is the image's USER, "uid:gid": who runs when the pod does not say.
	User string
	// Scratch holds each container's root (hard links to Image's files) while it runs.
	Scratch string
	// Pod returns the spec of the pod a container belongs to, by the pod's name (the executor
	// passes it as HOSTNAME): its security context, volumes and mounts.
	Pod func(ctx context.Context, pod string) (*corev1.PodSpec, error)

	mu      sync.Mutex
	reports []Report
}

// Report is what a container's init saw once confined, just before it ran the command.
type Report struct {
	// Pod is the pod's name.
	Pod string
	// Root is the host directory that was the container's root.
	Root string
	// Writable maps each directory the init tried to create a file in to "" when it could, or
	// to the error.
	Writable map[string]string
	// Status holds the identity and privilege lines of /proc/self/status (Uid, Gid, Groups,
	// NoNewPrivs, CapPrm, CapEff, CapBnd), as the command inherits them.
	Status map[string]string
}

// Reports returns the reports of the containers run so far, oldest first.
func (r *Runner) Reports() []Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reports)
}

// initSpec is everything a container's init does, prepared by the runner.
type initSpec struct {
	Root                string
	Mounts              []bindMount
	ReadOnlyRoot        bool
	NoNewPrivs          bool
	DropAllCapabilities bool
	UID, GID            int
	Groups              []int
	Probe               []string
	Dir                 string
	Args, Env           []string
}

// bindMount puts a host path at Target in the container.
type bindMount struct {
	Source, Target string
	ReadOnly, File bool
}

// Run confines and runs c, a container the executor prepared, and waits for it.
func (r *Runner) Run(ctx context.Context, c executor.Container) (int, error) {
	sandbox, podName := c.Env[executor.FSRootEnv], c.Env["HOSTNAME"]
	if sandbox == "" || podName == "" {
		return 0, errors.New("containerrunner: the container has no sandbox or pod name: not one the executor prepared")
	}
	pod, err := r.Pod(ctx, podName)
	if err != nil {
		return 0, fmt.Errorf("getting the spec of pod %s: %w", podName, err)
	}
	root := filepath.Join(r.Scratch, podName)
	spec, err := r.prepare(pod, c, sandbox, root)
	if err != nil {
		return 0, fmt.Errorf("preparing the container of pod %s: %w", podName, err)
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return 0, err
	}
	self, err := os.Executable()
	if err != nil {
		return 0, err
	}
	reports, reportWriter, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer reports.Close()
	cmd := exec.Command(self)
	cmd.Args[0] = "container-init"
	cmd.Env = []string{initEnv + "=" + string(raw)}
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stderr
	cmd.ExtraFiles = []*os.File{reportWriter} // fd 3
	// The init is PID 1 of its own PID namespace, as the command then is: killing it ends them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = c.GracePeriod + time.Second
	err = cmd.Start()
	reportWriter.Close()
	if err != nil {
		return 0, fmt.Errorf("starting the container's init: %w", err)
	}
	reported := make(chan Report, 1)
	go func() {
		rep := Report{Pod: podName, Root: root}
		if raw, err := io.ReadAll(reports); err == nil && len(raw) > 0 {
			_ = json.Unmarshal(raw, &rep)
		}
		reported <- rep
	}()

	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
			return
		case <-ctx.Done():
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		grace := time.NewTimer(c.GracePeriod)
		defer grace.Stop()
		select {
		case <-exited:
		case <-grace.C:
			_ = cmd.Process.Kill()
		}
	}()
	err = cmd.Wait()
	close(exited)
	rep := <-reported
	rep.Pod, rep.Root = podName, root
	r.mu.Lock()
	r.reports = append(r.reports, rep)
	r.mu.Unlock()

	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &exitErr):
		if status, ok := exitErr.Sys().(syscall.WaitStatus); ok && status.Signaled() {
			return 128 + int(status.Signal()), nil
		}
		return exitErr.ExitCode(), nil
	default:
		return 0, fmt.Errorf("waiting for the container: %w", err)
	}
}

// prepare lays out the container's root, gives its volumes to fsGroup as the kubelet does, and
// translates the executor's sandboxed container into what the container itself sees.
func (r *Runner) prepare(pod *corev1.PodSpec, c executor.Container, sandbox, root string) (*initSpec, error) {
	if len(pod.Containers) != 1 {
		return nil, fmt.Errorf("the pod has %d containers, not 1", len(pod.Containers))
	}
	container := &pod.Containers[0]
	psc := pod.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	csc := container.SecurityContext
	if csc == nil {
		csc = &corev1.SecurityContext{}
	}
	uid, gid, err := parseUser(r.User)
	if err != nil {
		return nil, err
	}
	if v := firstSet(csc.RunAsUser, psc.RunAsUser); v != nil {
		uid = int(*v)
	}
	if v := firstSet(csc.RunAsGroup, psc.RunAsGroup); v != nil {
		gid = int(*v)
	}
	if nonRoot := firstSet(csc.RunAsNonRoot, psc.RunAsNonRoot); nonRoot != nil && *nonRoot && uid == 0 {
		// The kubelet refuses to start it: CreateContainerConfigError.
		return nil, errors.New("container has runAsNonRoot and image will run as root")
	}
	fsGroup := -1
	groups := []int{}
	if psc.FSGroup != nil {
		fsGroup = int(*psc.FSGroup)
		groups = append(groups, fsGroup)
	}
	for _, g := range psc.SupplementalGroups {
		groups = append(groups, int(g))
	}
	spec := &initSpec{
		Root:         root,
		ReadOnlyRoot: csc.ReadOnlyRootFilesystem != nil && *csc.ReadOnlyRootFilesystem,
		NoNewPrivs:   csc.AllowPrivilegeEscalation != nil && !*csc.AllowPrivilegeEscalation,
		UID:          uid, GID: gid, Groups: groups,
	}
	if caps := csc.Capabilities; caps != nil {
		if len(caps.Add) > 0 || (len(caps.Drop) > 0 && !slices.Contains(caps.Drop, "ALL")) {
			return nil, fmt.Errorf("capabilities %v: only drop ALL is reproduced", caps)
		}
		spec.DropAllCapabilities = slices.Contains(caps.Drop, "ALL")
	}

	if err := linkTree(r.Image, root); err != nil {
		return nil, fmt.Errorf("laying out the image: %w", err)
	}
	volumes := map[string]*corev1.Volume{}
	for i := range pod.Volumes {
		volumes[pod.Volumes[i].Name] = &pod.Volumes[i]
	}
	for _, vm := range container.VolumeMounts {
		target := filepath.Clean("/" + vm.MountPath)
		source, err := os.Readlink(filepath.Join(sandbox, target))
		if err != nil {
			return nil, fmt.Errorf("finding the directory of volume %s: %w", vm.Name, err)
		}
		readOnly := vm.ReadOnly
		v := volumes[vm.Name]
		switch {
		case v == nil:
			return nil, fmt.Errorf("volume mount %s names no volume", vm.Name)
		case v.EmptyDir != nil:
			if err := os.Chmod(source, 0o777); err != nil {
				return nil, err
			}
		case v.Secret != nil, v.ConfigMap != nil, v.Projected != nil, v.DownwardAPI != nil:
			readOnly = true // The kubelet always mounts these read-only.
		}
		if fsGroup >= 0 {
			if err := giveToGroup(source, fsGroup, readOnly); err != nil {
				return nil, fmt.Errorf("giving volume %s to fsGroup %d: %w", vm.Name, fsGroup, err)
			}
		}
		spec.Mounts = append(spec.Mounts, bindMount{Source: source, Target: target, ReadOnly: readOnly})
		spec.Probe = append(spec.Probe, target)
	}

	env := map[string]string{}
	for k, v := range c.Env {
		env[k] = v
	}
	delete(env, executor.FSRootEnv)
	if kubeconfig := env["KUBECONFIG"]; strings.HasPrefix(kubeconfig, sandbox+"/") {
		// It stands for the projected service account token: read-only, readable by fsGroup.
		target := strings.TrimPrefix(kubeconfig, sandbox)
		group := gid
		if fsGroup >= 0 {
			group = fsGroup
		}
		if err := os.Chown(kubeconfig, 0, group); err != nil {
			return nil, err
		}
		if err := os.Chmod(kubeconfig, 0o440); err != nil {
			return nil, err
		}
		spec.Mounts = append(spec.Mounts, bindMount{Source: kubeconfig, Target: target, ReadOnly: true, File: true})
		env["KUBECONFIG"] = target
	}
	if env["HOME"] == sandbox {
		env["HOME"] = homeOf(r.Image, uid)
	}
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range env {
			if !yield(k) {
				return
			}
		}
	}) {
		spec.Env = append(spec.Env, k+"="+env[k])
	}

	spec.Args = slices.Clone(c.Args)
	if len(spec.Args) > 1 && strings.HasPrefix(spec.Args[1], "--"+executor.FSRootFlag+"=") {
		spec.Args = slices.Delete(spec.Args, 1, 2) // A container has its real paths.
	}
	spec.Dir = "/" + strings.TrimPrefix(strings.TrimPrefix(c.Dir, sandbox), "/")
	spec.Probe = append([]string{"/", filepath.Dir(spec.Args[0]), "/etc", env["HOME"]}, spec.Probe...)
	spec.Probe = slices.Compact(spec.Probe)
	return spec, nil
}

func firstSet[T any](values ...*T) *T {
	for _, v := range values {
		if v != nil {
			return v
		}
	}
	return nil
}

func parseUser(user string) (int, int, error) {
	u, g, ok := strings.Cut(user, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("the image's user %q is not uid:gid", user)
	}
	return uid, gid, nil
}

// homeOf reads uid's home in the image's /etc/passwd, as the runtime sets HOME; "/" without one.
func homeOf(image string, uid int) string {
	f, err := os.Open(filepath.Join(image, "etc", "passwd"))
	if err != nil {
		return "/"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Split(s.Text(), ":")
		if len(fields) >= 6 && fields[2] == strconv.Itoa(uid) {
			return fields[5]
		}
	}
	return "/"
}

// linkTree recreates the image's tree at root, files as hard links: no copy of the binary.
func linkTree(image, root string) error {
	if err := os.RemoveAll(root); err != nil {
		return err
	}
	return filepath.WalkDir(image, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(image, path)
		dst := filepath.Join(root, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
			if err := os.Chmod(dst, info.Mode()&(fs.ModePerm|fs.ModeSticky|fs.ModeSetgid)); err != nil {
				return err
			}
			st := info.Sys().(*syscall.Stat_t)
			return os.Lchown(dst, int(st.Uid), int(st.Gid))
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, dst)
		default:
			return os.Link(path, dst)
		}
	})
}

// giveToGroup does what the kubelet does to a volume for fsGroup: the group owns every file,
// may read it (and write it, unless the volume is read-only), and new files inherit the group.
func giveToGroup(dir string, gid int, readOnly bool) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if err := os.Lchown(path, -1, gid); err != nil {
			return err
		}
		mode := info.Mode().Perm() | 0o040
		if !readOnly {
			mode |= 0o020
		}
		if d.IsDir() {
			mode |= 0o010 | fs.ModeSetgid
		}
		return os.Chmod(path, mode)
	})
}

// Init makes this process a container's init when the runner started it as one: it sets the
// container up, then execs the container's command, and never returns. In any other process
// it returns at once. Call it first thing in main or TestMain.
func Init() {
	raw, ok := os.LookupEnv(initEnv)
	if !ok {
		return
	}
	err := initContainer(raw)
	// As runc reports a container that could not start.
	fmt.Fprintf(os.Stderr, "container init: %v\n", err)
	os.Exit(128)
}

func initContainer(raw string) error {
	// Privileges and no_new_privs are per thread: the exec happens on this one.
	runtime.LockOSThread()
	var s initSpec
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		return err
	}
	reports := os.NewFile(3, "reports")
	// Mounts made from here stay in this mount namespace, and go with it.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the mounts private: %w", err)
	}
	root := s.Root
	if err := syscall.Mount(root, root, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
		return fmt.Errorf("mounting the root: %w", err)
	}
	for _, m := range s.Mounts {
		target := filepath.Join(root, m.Target)
		// The mount point is created in the image's tree, as runc creates it: a path component
		// that is a file fails here as it fails there.
		if m.File {
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("creating the mount point of %s: %w", m.Target, err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o644)
			if err != nil {
				return fmt.Errorf("creating the mount point of %s: %w", m.Target, err)
			}
			f.Close()
		} else if err := os.MkdirAll(target, 0o755); err != nil {
			return fmt.Errorf("creating the mount point of %s: %w", m.Target, err)
		}
		if err := syscall.Mount(m.Source, target, "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("mounting %s: %w", m.Target, err)
		}
		if m.ReadOnly {
			if err := syscall.Mount("", target, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
				return fmt.Errorf("mounting %s read-only: %w", m.Target, err)
			}
		}
	}
	if err := mountSystem(root); err != nil {
		return err
	}
	if s.ReadOnlyRoot {
		if err := syscall.Mount("", root, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mounting the root read-only: %w", err)
		}
	}
	lastCap, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return err
	}
	if err := syscall.Chroot(root); err != nil {
		return fmt.Errorf("entering the root: %w", err)
	}
	if err := os.Chdir(s.Dir); err != nil {
		return fmt.Errorf("entering the working directory: %w", err)
	}
	if s.DropAllCapabilities {
		last, err := strconv.Atoi(strings.TrimSpace(string(lastCap)))
		if err != nil {
			return err
		}
		for c := 0; c <= last; c++ {
			if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_CAPBSET_DROP, uintptr(c), 0); errno != 0 {
				return fmt.Errorf("dropping capability %d: %w", c, errno)
			}
		}
	}
	if s.NoNewPrivs {
		const prSetNoNewPrivs = 38
		if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); errno != 0 {
			return fmt.Errorf("setting no_new_privs: %w", errno)
		}
	}
	if err := syscall.Setgroups(s.Groups); err != nil {
		return fmt.Errorf("setting the groups: %w", err)
	}
	if err := syscall.Setgid(s.GID); err != nil {
		return fmt.Errorf("setting the group: %w", err)
	}
	if err := syscall.Setuid(s.UID); err != nil {
		return fmt.Errorf("setting the user: %w", err)
	}

	rep := Report{Writable: map[string]string{}, Status: map[string]string{}}
	for _, dir := range s.Probe {
		f, err := os.CreateTemp(dir, ".write-probe-*")
		if err != nil {
			rep.Writable[dir] = err.Error()
			continue
		}
		f.Close()
		os.Remove(f.Name())
		rep.Writable[dir] = ""
	}
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(status), "\n") {
			name, value, _ := strings.Cut(line, ":")
			switch name {
			case "Uid", "Gid", "Groups", "NoNewPrivs", "CapPrm", "CapEff", "CapBnd":
				rep.Status[name] = strings.Join(strings.Fields(value), " ")
			}
		}
	}
	if err := json.NewEncoder(reports).Encode(rep); err != nil {
		return err
	}
	reports.Close()
	return syscall.Exec(s.Args[0], s.Args, s.Env)
}

// mountSystem gives the container the /proc of its PID namespace and a /dev of its own with
// null, zero, random and urandom, as runtimes do.
func mountSystem(root string) error {
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return fmt.Errorf("creating /proc: %w", err)
	}
	if err := syscall.Mount("proc", proc, "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("mounting /proc: %w", err)
	}
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return fmt.Errorf("creating /dev: %w", err)
	}
	if err := syscall.Mount("tmpfs", dev, "tmpfs", syscall.MS_NOSUID|syscall.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return fmt.Errorf("mounting /dev: %w", err)
	}
	for _, name := range []string{"null", "zero", "random", "urandom"} {
		target := filepath.Join(dev, name)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_RDONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := syscall.Mount("/dev/"+name, target, "", syscall.MS_BIND, ""); err != nil {
			return fmt.Errorf("mounting /dev/%s: %w", name, err)
		}
	}
	return nil
}
