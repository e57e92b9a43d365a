package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// patchStatus is each reconcile's one status write: a merge patch from base, sent only when the
// status changed, since thousands of users would multiply every empty request.
func patchStatus[T client.Object](ctx context.Context, c client.Client, obj, base T, status func(T) any, opts ...client.MergeFromOption) error {
	if equality.Semantic.DeepEqual(status(base), status(obj)) {
		return nil
	}
	if err := c.Status().Patch(ctx, obj, client.MergeFromWithOptions(base, opts...)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("patching status of %T %s: %w", obj, klog.KObj(obj), err)
	}
	return nil
}

// reconciled says whether a reconcile that returned err finished with the spec it read, so the
// status may claim its generation: it did unless the error is transient and will be retried.
// A terminal error (a spec that cannot work) is a finished reconcile, reported as Stalled.
func reconciled(err error) bool {
	return err == nil || errors.Is(err, reconcile.TerminalError(nil))
}

// enqueueByIndex maps an object to the objects (listed by newList's kind, in its namespace) whose
// field index names it: the policies reading a Secret, the users of a chain.
func enqueueByIndex(c client.Reader, newList func() client.ObjectList, index string) handler.MapFunc {
	return func(ctx context.Context, obj client.Object) []reconcile.Request {
		list := newList()
		// Only the names are read: no deep copy of every object listed.
		if err := c.List(ctx, list, client.InNamespace(obj.GetNamespace()), client.MatchingFields{index: obj.GetName()},
			client.UnsafeDisableDeepCopy); err != nil {
			ctrl.LoggerFrom(ctx).Error(err, "Listing objects to reconcile", "index", index, "object", klog.KObj(obj))
			return nil
		}
		items, err := meta.ExtractList(list)
		if err != nil {
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(items))
		for _, item := range items {
			if o, ok := item.(client.Object); ok {
				reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(o)})
			}
		}
		return reqs
	}
}

// userEventWindow is how long a policy or a chain waits, after one of its users changed, before
// it reads them all again: every change in that time is read by one reconcile, so its cost
// follows time and not its users' events (each reconcile reads all its users; one per event made
// the operator's cost grow with the square of the users).
const userEventWindow = time.Second

// enqueueCoalesced maps events to requests like handler.EnqueueRequestsFromMapFunc (the old and
// the new object of an update both), but each request waits window: events for the same object
// meanwhile join it instead of queueing a reconcile each.
func enqueueCoalesced(fn handler.MapFunc, window time.Duration) handler.EventHandler {
	add := func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request], objs ...client.Object) {
		for _, o := range objs {
			for _, req := range fn(ctx, o) {
				q.AddAfter(req, window)
			}
		}
	}
	return handler.Funcs{
		CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.ObjectOld, e.ObjectNew)
		},
		DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
		GenericFunc: func(ctx context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			add(ctx, q, e.Object)
		},
	}
}
