// Package plugin is the kubectl plugin (`kubectl chainsync`, and the same commands as
// `chainsync` subcommands): a tree of a chain's users with the stuck ones first, and the requests
// a person makes of the operator. Every request is what a person could write by hand, with the
// same effect: an annotation from api/v1alpha1 with a value, or (suspend, resume) spec.suspend.
// The cobra wiring is in internal/cli.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// FieldManager is who the plugin's writes are recorded as in managedFields, so a person (or a
// GitOps tool's diff) sees which changes came from the plugin.
const FieldManager = "kubectl-chainsync"

// Kinds a request can name.
const (
	KindSyncUser   = "SyncUser"
	KindSyncPolicy = "SyncPolicy"
)

// Ref names a SyncUser or a SyncPolicy; Kind is empty for a bare name not yet looked up.
type Ref struct {
	Kind string
	Name string
}

func (r Ref) String() string { return strings.ToLower(r.Kind) + "/" + r.Name }

// kindPrefixes are what kubectl accepts before the slash for each kind: singular, plural,
// short name.
var kindPrefixes = map[string]string{
	"syncuser": KindSyncUser, "syncusers": KindSyncUser, "su": KindSyncUser,
	"syncpolicy": KindSyncPolicy, "syncpolicies": KindSyncPolicy, "sp": KindSyncPolicy,
}

// ParseRef reads "NAME", "syncuser/NAME" or "syncpolicy/NAME" (plural and short names too, as
// kubectl takes them).
func ParseRef(arg string) (Ref, error) {
	prefix, name, found := strings.Cut(arg, "/")
	if !found {
		if arg == "" {
			return Ref{}, errors.New("an empty name")
		}
		return Ref{Name: arg}, nil
	}
	kind, ok := kindPrefixes[strings.ToLower(strings.TrimSuffix(prefix, "."+syncv1alpha1.GroupVersion.Group))]
	if !ok || name == "" || strings.Contains(name, "/") {
		return Ref{}, fmt.Errorf("%q is neither NAME nor syncuser/NAME nor syncpolicy/NAME", arg)
	}
	return Ref{Kind: kind, Name: name}, nil
}

// Requests makes requests of the operator in one namespace.
type Requests struct {
	Client    client.Client
	Namespace string
	// Out receives one line per object changed, saying what was written.
	Out io.Writer
	// Now stamps requested-at and reinit values; time.Now when nil.
	Now func() time.Time
}

func (r *Requests) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Resolve finds what a Ref names; a bare name must be a SyncUser or a SyncPolicy, not both.
func (r *Requests) Resolve(ctx context.Context, ref Ref) (client.Object, Ref, error) {
	get := func(kind string) (client.Object, error) {
		var obj client.Object = &syncv1alpha1.SyncUser{}
		if kind == KindSyncPolicy {
			obj = &syncv1alpha1.SyncPolicy{}
		}
		return obj, r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: ref.Name}, obj)
	}
	if ref.Kind != "" {
		obj, err := get(ref.Kind)
		if err != nil {
			return nil, ref, r.notFound(ref, err)
		}
		return obj, ref, nil
	}
	user, uerr := get(KindSyncUser)
	policy, perr := get(KindSyncPolicy)
	switch {
	case uerr == nil && perr == nil:
		return nil, ref, fmt.Errorf("%s is both a SyncUser and a SyncPolicy in namespace %s: say syncuser/%s or syncpolicy/%s",
			ref.Name, r.Namespace, ref.Name, ref.Name)
	case uerr == nil:
		return user, Ref{KindSyncUser, ref.Name}, nil
	case perr == nil:
		return policy, Ref{KindSyncPolicy, ref.Name}, nil
	case apierrors.IsNotFound(uerr) && apierrors.IsNotFound(perr):
		return nil, ref, fmt.Errorf("no SyncUser or SyncPolicy %s in namespace %s", ref.Name, r.Namespace)
	case !apierrors.IsNotFound(uerr):
		return nil, ref, fmt.Errorf("reading SyncUser %s: %w", ref.Name, uerr)
	default:
		return nil, ref, fmt.Errorf("reading SyncPolicy %s: %w", ref.Name, perr)
	}
}

func (r *Requests) notFound(ref Ref, err error) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("no %s %s in namespace %s", ref.Kind, ref.Name, r.Namespace)
	}
	return fmt.Errorf("reading %s %s: %w", ref.Kind, ref.Name, err)
}

func (r *Requests) user(ctx context.Context, name string) (*syncv1alpha1.SyncUser, error) {
	obj, _, err := r.Resolve(ctx, Ref{Kind: KindSyncUser, Name: name})
	if err != nil {
		return nil, err
	}
	return obj.(*syncv1alpha1.SyncUser), nil
}

// annotate sets one annotation by a merge patch that carries only that key, so it neither
// needs the latest resourceVersion nor touches anything else.
func (r *Requests) annotate(ctx context.Context, obj client.Object, ref Ref, key, value, note string) error {
	base := obj.DeepCopyObject().(client.Object)
	ann := obj.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[key] = value
	obj.SetAnnotations(ann)
	if err := r.Client.Patch(ctx, obj, client.MergeFrom(base), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("annotating %s: %w", ref, err)
	}
	line := fmt.Sprintf("%s annotated %s=%s", ref, key, value)
	if note != "" {
		line += " (" + note + ")"
	}
	_, err := fmt.Fprintln(r.Out, line)
	return err
}

// Approve approves the deletes that the delete threshold held back for a user, naming the cycle
// that held them (status.lastCycle.pendingDeletesCycle) as ApproveDeletesAnnotation requires.
func (r *Requests) Approve(ctx context.Context, name string) error {
	u, err := r.user(ctx, name)
	if err != nil {
		return err
	}
	ref := Ref{KindSyncUser, name}
	c := u.Status.LastCycle
	if c == nil || c.PendingDeletes == 0 || c.PendingDeletesCycle == "" {
		last := "it has run no cycle yet"
		if c != nil {
			last = fmt.Sprintf("its last cycle %s held none back", c.ID)
		}
		return fmt.Errorf("%s has no deletes waiting for approval: %s", ref, last)
	}
	note := fmt.Sprintf("approves the %d deletes held back by cycle %s; a cycle carries them out now", c.PendingDeletes, c.PendingDeletesCycle)
	if u.Annotations[syncv1alpha1.ApproveDeletesAnnotation] == c.PendingDeletesCycle {
		_, err := fmt.Fprintf(r.Out, "%s already approves the %d deletes held back by cycle %s (%s=%s); its next cycle carries them out\n",
			ref, c.PendingDeletes, c.PendingDeletesCycle, syncv1alpha1.ApproveDeletesAnnotation, c.PendingDeletesCycle)
		return err
	}
	return r.annotate(ctx, u, ref, syncv1alpha1.ApproveDeletesAnnotation, c.PendingDeletesCycle, note)
}

// Reinit asks for a resync or a clear of a user (kind is syncv1alpha1.ReinitResync or
// ReinitClear). The value gets a suffix (the time in milliseconds) so that it is a new request
// even when the same was carried out a moment before.
func (r *Requests) Reinit(ctx context.Context, name, kind string) error {
	u, err := r.user(ctx, name)
	if err != nil {
		return err
	}
	ref := Ref{KindSyncUser, name}
	value := kind + "@" + strconv.FormatInt(r.now().UnixMilli(), 10)
	current := u.Annotations[syncv1alpha1.ReinitAnnotation]
	if current == value {
		_, err := fmt.Fprintf(r.Out, "%s already asks for %s=%s\n", ref, syncv1alpha1.ReinitAnnotation, value)
		return err
	}
	var note string
	switch kind {
	case syncv1alpha1.ReinitResync:
		note = "a Complete cycle against the kept records starts now"
	case syncv1alpha1.ReinitClear:
		note = "a cycle forgets the records and relinks the items by matchOn now"
	default:
		return fmt.Errorf("reinit %q is neither %s nor %s", kind, syncv1alpha1.ReinitResync, syncv1alpha1.ReinitClear)
	}
	if current != "" && current != u.Status.LastHandledReinit {
		note += "; it replaces the pending request " + current
	}
	return r.annotate(ctx, u, ref, syncv1alpha1.ReinitAnnotation, value, note)
}

// SyncNow asks for a cycle now of a user, or of every user of a policy. The value is the time
// to the nanosecond, as Flux's requestedAt: a request made a moment after one that was handled
// is new.
func (r *Requests) SyncNow(ctx context.Context, ref Ref) error {
	obj, ref, err := r.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	value := r.now().UTC().Format(time.RFC3339Nano)
	if obj.GetAnnotations()[syncv1alpha1.RequestedAtAnnotation] == value {
		_, err := fmt.Fprintf(r.Out, "%s already asks for %s=%s\n", ref, syncv1alpha1.RequestedAtAnnotation, value)
		return err
	}
	note := "a cycle starts now"
	if ref.Kind == KindSyncPolicy {
		note = "a cycle of each of its users starts now"
	}
	if suspended(obj) {
		note = "suspended: no cycle starts until it is resumed"
	}
	return r.annotate(ctx, obj, ref, syncv1alpha1.RequestedAtAnnotation, value, note)
}

func suspended(obj client.Object) bool {
	switch o := obj.(type) {
	case *syncv1alpha1.SyncUser:
		return o.Spec.Suspend
	case *syncv1alpha1.SyncPolicy:
		return o.Spec.Suspend
	}
	return false
}

// SetSuspend sets spec.suspend of a user or a policy. There is no annotation for it: spec.suspend
// is the field a person sets by hand (kubectl patch) as well, and the operator honours nothing
// else. The plugin writes it as FieldManager; a GitOps tool whose manifest sets spec.suspend
// puts its own value back at its next sync.
func (r *Requests) SetSuspend(ctx context.Context, ref Ref, suspend bool) error {
	obj, ref, err := r.Resolve(ctx, ref)
	if err != nil {
		return err
	}
	verb := map[bool]string{true: "suspended", false: "resumed"}[suspend]
	if suspended(obj) == suspend {
		_, err := fmt.Fprintf(r.Out, "%s is %s already (spec.suspend=%t)\n", ref, map[bool]string{true: "suspended", false: "not suspended"}[suspend], suspend)
		return err
	}
	base := obj.DeepCopyObject().(client.Object)
	switch o := obj.(type) {
	case *syncv1alpha1.SyncUser:
		o.Spec.Suspend = suspend
	case *syncv1alpha1.SyncPolicy:
		o.Spec.Suspend = suspend
	}
	if err := r.Client.Patch(ctx, obj, client.MergeFrom(base), client.FieldOwner(FieldManager)); err != nil {
		return fmt.Errorf("setting spec.suspend of %s: %w", ref, err)
	}
	_, err = fmt.Fprintf(r.Out, "%s %s (spec.suspend=%t, field manager %s)\n", ref, verb, suspend, FieldManager)
	return err
}
