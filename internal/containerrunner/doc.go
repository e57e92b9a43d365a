// Package containerrunner runs a pod's container the way a container runtime would, as far as
// this machine can without one: an executor.Runner for tests that must prove what the image
// does under its pod's constraints, which the local executor's processes ignore.
//
// Each container gets a root of its own holding only the image's files (hard links to a
// directory laid out as the image), in a mount and PID namespace of its own. As runc does, it
// creates the mount point of each volumeMount inside that root (failing as runc fails when a
// path component is a file), bind-mounts the volume there, mounts /proc and a /dev with null,
// zero, random and urandom, and remounts the root read-only when readOnlyRootFilesystem says
// so. It then chroots, sets no_new_privs (allowPrivilegeEscalation: false), empties the
// capability bounding set (capabilities drop ALL), takes the pod's runAsUser, runAsGroup and
// fsGroup, and execs the command, which becomes PID 1. Before that it tries to write in /, in
// the directory of the command and in each mount, and reports what it could (Report).
//
// Volumes get fsGroup as the kubelet gives it: group ownership, group read and write, setgid
// directories; an emptyDir is mode 0777. The executor's kubeconfig, which stands for the
// projected service account token, is mounted read-only at the path the executor gives it,
// readable by fsGroup.
//
// It needs Linux and root (CAP_SYS_ADMIN, CAP_SETUID...). A process using it must call Init
// first thing (TestMain): the runner starts the process's own executable as each container's
// init, which sets the container up and execs its command, as `runc init` does.
//
// Not reproduced, so not proven by a test using it: image layers and their ownership (the
// image is a directory), seccomp (RuntimeDefault), AppArmor or SELinux, cgroups and resource
// limits, a network namespace (the container shares the host's, so it reaches the API server
// on loopback), user namespaces, the kubelet's own /etc/hosts and /etc/resolv.conf, and the
// projected token volume itself (a kubeconfig stands in for it).
package containerrunner
