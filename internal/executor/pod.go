package executor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// configError is a pod template that can never start here: a missing object or key, or
// something the executor cannot run. It fails the Job at once, with its reason.
type configError struct {
	reason, message string
}

func (e *configError) Error() string { return e.message }

func missing(reason, format string, args ...any) *configError {
	return &configError{reason: reason, message: fmt.Sprintf(format, args...)}
}

// pod is one attempt at running a Job's pod (one index, for an Indexed Job) on this machine.
type pod struct {
	name      string
	namespace string
	index     int
	// dir holds everything of this pod: the sandbox, its volumes and its output.
	dir string
	// sandbox mirrors the container's filesystem: each volumeMount is a symlink at its mountPath.
	sandbox string
	logPath string
	// container is ready to run, but for its output.
	container Container
}

// podIndexAnnotation and podIndexLabel carry the completion index, as the Job controller sets them.
const (
	podIndexAnnotation = "batch.kubernetes.io/job-completion-index"
	podIndexLabel      = "batch.kubernetes.io/job-completion-index"
)

// Paths inside the sandbox.
const (
	kubeconfigPath  = "/var/run/secrets/chainsync.dev/kubeconfig"
	defaultGrace    = 30 * time.Second
	tokenLifetime   = time.Hour
	defaultFileMode = 0o644
)

// ClaimDir is the local directory that stands for a PersistentVolumeClaim's volume.
func ClaimDir(dataDir, namespace, claim string) string {
	return filepath.Join(dataDir, namespace, "pvc", claim)
}

// PodDir holds a pod's output.log, and its sandbox and volumes while it runs. Pods are named
// <job>-<index>-<attempt>, the attempt counting from 0 for each index.
func PodDir(dataDir, namespace, pod string) string {
	return filepath.Join(dataDir, namespace, "pods", pod)
}

// preparePod resolves everything the pod template references, builds the sandbox and mints the
// service account's credentials. A *configError means the pod could never start.
func (e *Executor) preparePod(ctx context.Context, job *batchv1.Job, index, attempt int) (*pod, error) {
	template := &job.Spec.Template
	spec := &template.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) != 0 {
		return nil, missing(ReasonUnsupportedPodTemplate,
			"The executor runs pods of exactly one container and no init containers; the template has %d and %d",
			len(spec.Containers), len(spec.InitContainers))
	}
	container := &spec.Containers[0]
	p := &pod{
		name:      fmt.Sprintf("%s-%d-%d", job.Name, index, attempt),
		namespace: job.Namespace,
		index:     index,
	}
	p.dir = PodDir(e.opts.DataDir, job.Namespace, p.name)
	p.sandbox = filepath.Join(p.dir, "root")
	p.logPath = filepath.Join(p.dir, "output.log")
	if err := os.RemoveAll(p.dir); err != nil {
		return nil, fmt.Errorf("clearing %s: %w", p.dir, err)
	}
	if err := os.MkdirAll(p.sandbox, 0o755); err != nil {
		return nil, fmt.Errorf("creating the sandbox of pod %s: %w", p.name, err)
	}

	serviceAccount, err := e.serviceAccount(ctx, job.Namespace, spec)
	if err != nil {
		return p, err
	}
	objects := &objectCache{reader: e.client, namespace: job.Namespace}
	volumes, err := e.prepareVolumes(ctx, p, spec, objects)
	if err != nil {
		return p, err
	}
	if err := mountVolumes(p.sandbox, container, volumes); err != nil {
		return p, err
	}

	labels, annotations := podMetadata(job, index)
	env, err := resolveEnv(ctx, container, objects, podFields{
		name: p.name, namespace: job.Namespace, serviceAccount: serviceAccountName(spec),
		labels: labels, annotations: annotations,
	})
	if err != nil {
		return p, err
	}
	if isIndexed(job) {
		setDefault(env, "JOB_COMPLETION_INDEX", strconv.Itoa(index))
	}
	setDefault(env, "HOSTNAME", p.name)
	setDefault(env, "HOME", p.sandbox)
	setDefault(env, "PATH", os.Getenv("PATH"))
	env[FSRootEnv] = p.sandbox
	if serviceAccount != nil && automountToken(spec, serviceAccount) {
		path, err := e.writeKubeconfig(ctx, p, serviceAccount, job)
		if err != nil {
			return p, err
		}
		setDefault(env, "KUBECONFIG", path)
	}

	dir := p.sandbox
	if container.WorkingDir != "" {
		dir = filepath.Join(p.sandbox, container.WorkingDir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return p, fmt.Errorf("creating the working directory %s: %w", container.WorkingDir, err)
		}
	}
	var args []string
	for _, arg := range append(append([]string(nil), container.Command...), container.Args...) {
		args = append(args, expand(arg, env))
	}
	if len(container.Command) == 0 {
		return p, missing(ReasonUnsupportedPodTemplate,
			"Container %q has no command: the executor cannot know the image's entrypoint", container.Name)
	}
	if isChainsync(args[0]) {
		// Before the subcommand, so it reaches whichever one runs and never lands after a "--".
		args = slices.Insert(args, 1, "--"+FSRootFlag+"="+p.sandbox)
	}
	grace := defaultGrace
	if spec.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*spec.TerminationGracePeriodSeconds) * time.Second
	}
	p.container = Container{Args: args, Env: env, Dir: dir, GracePeriod: grace}
	return p, nil
}

// cleanup removes what the pod held while it ran, secrets included, and keeps its output.
func (p *pod) cleanup() error {
	if err := os.RemoveAll(p.sandbox); err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(p.dir, "volumes"))
}

func serviceAccountName(spec *corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	return "default"
}

// serviceAccount fetches the pod's ServiceAccount, which must exist as a cluster requires. envtest
// runs no controller creating "default" in every namespace: a template without serviceAccountName
// needs one created by hand.
func (e *Executor) serviceAccount(ctx context.Context, namespace string, spec *corev1.PodSpec) (*corev1.ServiceAccount, error) {
	name := serviceAccountName(spec)
	var sa corev1.ServiceAccount
	if err := e.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &sa); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, missing(ReasonServiceAccountNotFound, "ServiceAccount %q not found in namespace %q", name, namespace)
		}
		return nil, fmt.Errorf("getting ServiceAccount %s/%s: %w", namespace, name, err)
	}
	return &sa, nil
}

func automountToken(spec *corev1.PodSpec, sa *corev1.ServiceAccount) bool {
	if spec.AutomountServiceAccountToken != nil {
		return *spec.AutomountServiceAccountToken
	}
	return ptr.Deref(sa.AutomountServiceAccountToken, true)
}

// writeKubeconfig mints a token for the service account with the TokenRequest API and writes a
// kubeconfig using it, so the process has exactly the service account's permissions.
func (e *Executor) writeKubeconfig(ctx context.Context, p *pod, sa *corev1.ServiceAccount, job *batchv1.Job) (string, error) {
	lifetime := tokenLifetime
	if deadline := job.Spec.ActiveDeadlineSeconds; deadline != nil && time.Duration(*deadline)*time.Second > lifetime {
		lifetime = time.Duration(*deadline)*time.Second + 10*time.Minute
	}
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(lifetime / time.Second)),
	}}
	if err := e.client.SubResource("token").Create(ctx, sa, request); err != nil {
		return "", fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", sa.Namespace, sa.Name, err)
	}
	config := clientcmdapi.NewConfig()
	config.Clusters["cluster"] = &clientcmdapi.Cluster{
		Server:                   e.server,
		CertificateAuthorityData: e.caData,
		InsecureSkipTLSVerify:    e.insecure,
	}
	config.AuthInfos["serviceaccount"] = &clientcmdapi.AuthInfo{Token: request.Status.Token}
	config.Contexts["pod"] = &clientcmdapi.Context{Cluster: "cluster", AuthInfo: "serviceaccount", Namespace: p.namespace}
	config.CurrentContext = "pod"
	path := filepath.Join(p.sandbox, kubeconfigPath)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", fmt.Errorf("creating the kubeconfig's directory: %w", err)
	}
	if err := clientcmd.WriteToFile(*config, path); err != nil {
		return "", fmt.Errorf("writing the kubeconfig of pod %s: %w", p.name, err)
	}
	return path, nil
}

// prepareVolumes returns the local directory of each volume, by name.
func (e *Executor) prepareVolumes(ctx context.Context, p *pod, spec *corev1.PodSpec, objects *objectCache) (map[string]string, error) {
	dirs := make(map[string]string, len(spec.Volumes))
	for _, volume := range spec.Volumes {
		own := filepath.Join(p.dir, "volumes", volume.Name)
		switch source := volume.VolumeSource; {
		case source.PersistentVolumeClaim != nil:
			claim := source.PersistentVolumeClaim.ClaimName
			var pvc corev1.PersistentVolumeClaim
			if err := e.client.Get(ctx, client.ObjectKey{Namespace: p.namespace, Name: claim}, &pvc); err != nil {
				if apierrors.IsNotFound(err) {
					return nil, missing(ReasonPersistentVolumeClaimNotFound,
						"PersistentVolumeClaim %q not found in namespace %q (volume %q)", claim, p.namespace, volume.Name)
				}
				return nil, fmt.Errorf("getting PersistentVolumeClaim %s/%s: %w", p.namespace, claim, err)
			}
			dir := ClaimDir(e.opts.DataDir, p.namespace, claim)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return nil, fmt.Errorf("creating the directory of PersistentVolumeClaim %s: %w", claim, err)
			}
			dirs[volume.Name] = dir
		case source.EmptyDir != nil:
			if err := os.MkdirAll(own, 0o755); err != nil {
				return nil, fmt.Errorf("creating emptyDir volume %s: %w", volume.Name, err)
			}
			dirs[volume.Name] = own
		case source.HostPath != nil:
			dirs[volume.Name] = source.HostPath.Path
		case source.Secret != nil:
			secret := source.Secret
			data, found, err := objects.secret(ctx, secret.SecretName)
			if err != nil {
				return nil, err
			}
			if !found && !ptr.Deref(secret.Optional, false) {
				return nil, missing(ReasonSecretNotFound, "Secret %q not found in namespace %q (volume %q)",
					secret.SecretName, p.namespace, volume.Name)
			}
			err = writeVolumeFiles(own, data, secret.Items, secret.DefaultMode, func(key string) error {
				if ptr.Deref(secret.Optional, false) {
					return nil
				}
				return missing(ReasonSecretKeyNotFound, "Key %q not found in Secret %q in namespace %q (volume %q)",
					key, secret.SecretName, p.namespace, volume.Name)
			})
			if err != nil {
				return nil, err
			}
			dirs[volume.Name] = own
		case source.ConfigMap != nil:
			configMap := source.ConfigMap
			data, found, err := objects.configMap(ctx, configMap.Name)
			if err != nil {
				return nil, err
			}
			if !found && !ptr.Deref(configMap.Optional, false) {
				return nil, missing(ReasonConfigMapNotFound, "ConfigMap %q not found in namespace %q (volume %q)",
					configMap.Name, p.namespace, volume.Name)
			}
			err = writeVolumeFiles(own, data, configMap.Items, configMap.DefaultMode, func(key string) error {
				if ptr.Deref(configMap.Optional, false) {
					return nil
				}
				return missing(ReasonConfigMapKeyNotFound, "Key %q not found in ConfigMap %q in namespace %q (volume %q)",
					key, configMap.Name, p.namespace, volume.Name)
			})
			if err != nil {
				return nil, err
			}
			dirs[volume.Name] = own
		default:
			return nil, missing(ReasonUnsupportedPodTemplate,
				"Volume %q is of a type the executor cannot provide locally (it provides persistentVolumeClaim, secret, configMap, emptyDir and hostPath)",
				volume.Name)
		}
	}
	return dirs, nil
}

// writeVolumeFiles writes a Secret's or ConfigMap's keys as files, all of them or the items
// listed. missingKey decides what a listed key the object lacks means.
func writeVolumeFiles(dir string, data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, missingKey func(key string) error) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating volume directory %s: %w", dir, err)
	}
	if len(items) == 0 {
		for key := range data {
			items = append(items, corev1.KeyToPath{Key: key, Path: key})
		}
	}
	for _, item := range items {
		content, ok := data[item.Key]
		if !ok {
			if err := missingKey(item.Key); err != nil {
				return err
			}
			continue
		}
		mode := ptr.Deref(item.Mode, ptr.Deref(defaultMode, defaultFileMode))
		path := filepath.Join(dir, filepath.Clean("/"+item.Path))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("creating the directory of %s: %w", item.Path, err)
		}
		if err := os.WriteFile(path, content, os.FileMode(mode)); err != nil {
			return fmt.Errorf("writing %s: %w", item.Path, err)
		}
	}
	return nil
}

// mountVolumes makes <sandbox>/<mountPath> a symlink to each mounted volume's directory (or to
// the subPath inside it). readOnly cannot be enforced on a local process and is ignored.
func mountVolumes(sandbox string, container *corev1.Container, volumes map[string]string) error {
	mounts := append([]corev1.VolumeMount(nil), container.VolumeMounts...)
	sort.Slice(mounts, func(i, j int) bool { return mounts[i].MountPath < mounts[j].MountPath })
	for i, mount := range mounts {
		mountPath := filepath.Clean("/" + mount.MountPath)
		if mountPath == "/" {
			return missing(ReasonUnsupportedPodTemplate, "Volume %q is mounted at /: the sandbox cannot mirror that", mount.Name)
		}
		// A symlinked directory cannot hold a second mount inside it without writing into the
		// first volume.
		if i > 0 && strings.HasPrefix(mountPath, filepath.Clean("/"+mounts[i-1].MountPath)+"/") {
			return missing(ReasonUnsupportedPodTemplate, "Mount path %s lies inside mount path %s: nested mounts are not supported",
				mountPath, mounts[i-1].MountPath)
		}
		source, ok := volumes[mount.Name]
		if !ok {
			return missing(ReasonUnsupportedPodTemplate, "Volume mount %q names no volume of the pod", mount.Name)
		}
		if mount.SubPath != "" {
			source = filepath.Join(source, filepath.Clean("/"+mount.SubPath))
			if _, err := os.Stat(source); os.IsNotExist(err) {
				// The kubelet creates a missing subPath as a directory.
				if err := os.MkdirAll(source, 0o755); err != nil {
					return fmt.Errorf("creating subPath %s of volume %s: %w", mount.SubPath, mount.Name, err)
				}
			}
		}
		link := filepath.Join(sandbox, mountPath)
		if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
			return fmt.Errorf("creating the parent of mount path %s: %w", mountPath, err)
		}
		if err := os.Symlink(source, link); err != nil {
			return fmt.Errorf("mounting volume %s at %s: %w", mount.Name, mountPath, err)
		}
	}
	return nil
}

// podFields are what a fieldRef can read.
type podFields struct {
	name, namespace, serviceAccount string
	labels, annotations             map[string]string
}

func (f podFields) get(path string) (string, bool) {
	switch path {
	case "metadata.name":
		return f.name, true
	case "metadata.namespace":
		return f.namespace, true
	case "spec.serviceAccountName":
		return f.serviceAccount, true
	case "spec.nodeName":
		return "localhost", true
	case "status.podIP", "status.hostIP":
		return "127.0.0.1", true
	}
	for prefix, values := range map[string]map[string]string{"metadata.labels": f.labels, "metadata.annotations": f.annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok && strings.HasSuffix(key, "']") {
			return values[strings.TrimSuffix(key, "']")], true
		}
	}
	return "", false
}

// podMetadata returns the labels and annotations the Job controller gives its pods.
func podMetadata(job *batchv1.Job, index int) (labels, annotations map[string]string) {
	labels = map[string]string{}
	for k, v := range job.Spec.Template.Labels {
		labels[k] = v
	}
	annotations = map[string]string{}
	for k, v := range job.Spec.Template.Annotations {
		annotations[k] = v
	}
	labels[batchv1.JobNameLabel] = job.Name
	labels[batchv1.ControllerUidLabel] = string(job.UID)
	if isIndexed(job) {
		labels[podIndexLabel] = strconv.Itoa(index)
		annotations[podIndexAnnotation] = strconv.Itoa(index)
	}
	return labels, annotations
}

// resolveEnv builds the container's environment as the kubelet does: envFrom first, then env in
// order, each value able to refer to the ones before it with $(NAME).
func resolveEnv(ctx context.Context, container *corev1.Container, objects *objectCache, fields podFields) (map[string]string, error) {
	env := map[string]string{}
	for _, from := range container.EnvFrom {
		var (
			data     map[string][]byte
			found    bool
			err      error
			optional bool
			kind     string
			reason   string
			name     string
		)
		switch {
		case from.SecretRef != nil:
			name, optional, kind, reason = from.SecretRef.Name, ptr.Deref(from.SecretRef.Optional, false), "Secret", ReasonSecretNotFound
			data, found, err = objects.secret(ctx, name)
		case from.ConfigMapRef != nil:
			name, optional, kind, reason = from.ConfigMapRef.Name, ptr.Deref(from.ConfigMapRef.Optional, false), "ConfigMap", ReasonConfigMapNotFound
			data, found, err = objects.configMap(ctx, name)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		if !found && !optional {
			return nil, missing(reason, "%s %q not found in namespace %q (envFrom of container %q)", kind, name, fields.namespace, container.Name)
		}
		for key, value := range data {
			env[from.Prefix+key] = string(value)
		}
	}
	for _, variable := range container.Env {
		if variable.ValueFrom == nil {
			env[variable.Name] = expand(variable.Value, env)
			continue
		}
		value, ok, err := resolveValueFrom(ctx, variable, container.Name, objects, fields)
		if err != nil {
			return nil, err
		}
		if ok {
			env[variable.Name] = value
		}
	}
	return env, nil
}

// resolveValueFrom returns false for an optional reference to something missing: the variable
// is then left unset, as the kubelet does.
func resolveValueFrom(ctx context.Context, variable corev1.EnvVar, containerName string, objects *objectCache, fields podFields) (string, bool, error) {
	from := variable.ValueFrom
	switch {
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		data, found, err := objects.secret(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		optional := ptr.Deref(ref.Optional, false)
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, missing(ReasonSecretNotFound, "Secret %q not found in namespace %q (env %s of container %q)",
				ref.Name, fields.namespace, variable.Name, containerName)
		}
		value, ok := data[ref.Key]
		if !ok && !optional {
			return "", false, missing(ReasonSecretKeyNotFound, "Key %q not found in Secret %q in namespace %q (env %s of container %q)",
				ref.Key, ref.Name, fields.namespace, variable.Name, containerName)
		}
		return string(value), ok, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		data, found, err := objects.configMap(ctx, ref.Name)
		if err != nil {
			return "", false, err
		}
		optional := ptr.Deref(ref.Optional, false)
		if !found {
			if optional {
				return "", false, nil
			}
			return "", false, missing(ReasonConfigMapNotFound, "ConfigMap %q not found in namespace %q (env %s of container %q)",
				ref.Name, fields.namespace, variable.Name, containerName)
		}
		value, ok := data[ref.Key]
		if !ok && !optional {
			return "", false, missing(ReasonConfigMapKeyNotFound, "Key %q not found in ConfigMap %q in namespace %q (env %s of container %q)",
				ref.Key, ref.Name, fields.namespace, variable.Name, containerName)
		}
		return string(value), ok, nil
	case from.FieldRef != nil:
		value, ok := fields.get(from.FieldRef.FieldPath)
		if !ok {
			return "", false, missing(ReasonUnsupportedPodTemplate, "Env %s of container %q reads field %s, which the executor does not provide",
				variable.Name, containerName, from.FieldRef.FieldPath)
		}
		return value, true, nil
	default:
		return "", false, missing(ReasonUnsupportedPodTemplate, "Env %s of container %q has a valueFrom the executor does not provide",
			variable.Name, containerName)
	}
}

// objectCache reads each Secret and ConfigMap a pod references once, so that all its references
// see the same version.
type objectCache struct {
	reader     client.Reader
	namespace  string
	secrets    map[string]map[string][]byte
	configMaps map[string]map[string][]byte
}

func (c *objectCache) secret(ctx context.Context, name string) (map[string][]byte, bool, error) {
	if data, ok := c.secrets[name]; ok {
		return data, data != nil, nil
	}
	var secret corev1.Secret
	err := c.reader.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("getting Secret %s/%s: %w", c.namespace, name, err)
	}
	if c.secrets == nil {
		c.secrets = map[string]map[string][]byte{}
	}
	if err != nil {
		c.secrets[name] = nil
		return nil, false, nil
	}
	data := secret.Data
	if data == nil {
		data = map[string][]byte{}
	}
	c.secrets[name] = data
	return data, true, nil
}

func (c *objectCache) configMap(ctx context.Context, name string) (map[string][]byte, bool, error) {
	if data, ok := c.configMaps[name]; ok {
		return data, data != nil, nil
	}
	var configMap corev1.ConfigMap
	err := c.reader.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, &configMap)
	if err != nil && !apierrors.IsNotFound(err) {
		return nil, false, fmt.Errorf("getting ConfigMap %s/%s: %w", c.namespace, name, err)
	}
	if c.configMaps == nil {
		c.configMaps = map[string]map[string][]byte{}
	}
	if err != nil {
		c.configMaps[name] = nil
		return nil, false, nil
	}
	data := map[string][]byte{}
	for k, v := range configMap.Data {
		data[k] = []byte(v)
	}
	for k, v := range configMap.BinaryData {
		data[k] = v
	}
	c.configMaps[name] = data
	return data, true, nil
}

func setDefault(env map[string]string, name, value string) {
	if _, ok := env[name]; !ok {
		env[name] = value
	}
}

func isIndexed(job *batchv1.Job) bool {
	return ptr.Deref(job.Spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
}

// expand replaces $(NAME) with the variable's value as Kubernetes does for command, args and env:
// an undefined reference is left as written and $$ escapes a $.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			reference := s[i : i+3+end]
			if value, ok := env[s[i+2:i+2+end]]; ok {
				b.WriteString(value)
			} else {
				b.WriteString(reference)
			}
			i += 2 + end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}
