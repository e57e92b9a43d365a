// Package webhook serves SyncReceivers: services that changed something call a receiver's path
// on the operator's webhook port, and the users the call names are asked to cycle now. Calls
// are checked (rate, size, signature) before anything is read from them, and many calls for
// one user within a second ask for one cycle.
package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
)

// receiverPathIndex finds a receiver by status.webhookPath.
const receiverPathIndex = ".status.webhookPath"

// defaultMaxBodyBytes is spec.limits.maxBodyBytes's default, for receivers stored without it.
const defaultMaxBodyBytes = 1 << 20

// Options configure the webhook server.
type Options struct {
	// Addr is where receivers are served; "" or "0" serves none.
	Addr string
	// Clock paces the coalescing of requests; tests inject a fake one.
	Clock clock.WithTicker
}

// SetupWithManager indexes receivers and users for the server and adds it to mgr. Every replica
// serves (the server needs no leader): each looks receivers up in its own cache, and requests
// cycles by annotating users, which the leader acts on.
func SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts Options) error {
	if opts.Addr == "" || opts.Addr == "0" {
		return nil
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncReceiver{}, receiverPathIndex, func(o client.Object) []string {
		if p := o.(*syncv1alpha1.SyncReceiver).Status.WebhookPath; p != "" {
			return []string{p}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing receivers by path: %w", err)
	}
	if err := idx.IndexField(ctx, &syncv1alpha1.SyncUser{}, userIndex, func(o client.Object) []string {
		return userIndexKeys(o.(*syncv1alpha1.SyncUser))
	}); err != nil {
		return fmt.Errorf("indexing users for receivers: %w", err)
	}
	return mgr.Add(NewServer(opts.Addr, mgr.GetClient(), &Tokens{Metadata: mgr.GetClient(), Secrets: mgr.GetAPIReader()}, opts.Clock))
}

// Server is the manager Runnable that serves receivers.
type Server struct {
	addr      string
	client    client.Client
	tokens    *Tokens
	clock     clock.WithTicker
	coalescer *coalescer

	mu       sync.Mutex
	limiters map[types.UID]*receiverLimiter
}

type receiverLimiter struct {
	limits  syncv1alpha1.ReceiverLimits
	limiter *rate.Limiter
}

// NewServer returns a server of receivers on addr that reads receivers and users through c
// (the manager's cache) and asks for cycles by patching users with c.
func NewServer(addr string, c client.Client, tokens *Tokens, clk clock.WithTicker) *Server {
	s := &Server{addr: addr, client: c, tokens: tokens, clock: clk, limiters: map[types.UID]*receiverLimiter{}}
	s.coalescer = newCoalescer(clk, coalesceWindow, s.requestCycle)
	return s
}

// NeedLeaderElection is false: every replica serves calls.
func (s *Server) NeedLeaderElection() bool { return false }

// Start serves until ctx ends, then sends the requests still pending.
func (s *Server) Start(ctx context.Context) error {
	log := ctrl.Log.WithName("webhook")
	ctx = ctrl.LoggerInto(ctx, log)
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listening for webhook calls on %s: %w", s.addr, err)
	}
	srv := &http.Server{
		Handler: s,
		// Slow senders hold a connection for a bounded time; a body is at most 16 MiB.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	flushed := make(chan struct{})
	go func() {
		defer close(flushed)
		s.coalescer.run(ctx)
	}()
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdownCtx)
	}()
	log.Info("Serving webhook receivers", "addr", l.Addr().String())
	err = srv.Serve(l)
	<-flushed
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeHTTP answers one call. The order of the checks is the point: the cheap ones come first,
// and nothing of the body is looked at before its signature is checked.
func (s *Server) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	ctx := req.Context()
	rcv, err := s.receiverAt(ctx, req.URL.Path)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Finding the receiver of a call")
		answer(w, http.StatusInternalServerError, "", "", outcomeError)
		return
	}
	if rcv == nil {
		answer(w, http.StatusNotFound, "", "", outcomeNotFound)
		return
	}
	code, outcome, users := s.handle(ctx, w, req, rcv)
	ctrl.LoggerFrom(ctx).V(1).Info("Webhook call", "receiver", klog.KObj(rcv), "outcome", outcome, "users", users)
	answer(w, code, rcv.Namespace, rcv.Name, outcome)
}

// handle checks a call to rcv and, if it is good, marks the users it names pending. It returns
// the status code, the outcome and how many users were asked to cycle.
func (s *Server) handle(ctx context.Context, w http.ResponseWriter, req *http.Request, rcv *syncv1alpha1.SyncReceiver) (int, string, int) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return http.StatusMethodNotAllowed, outcomeBadRequest, 0
	}
	if wait, ok := s.allow(rcv); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(math.Ceil(max(wait.Seconds(), 1)))))
		return http.StatusTooManyRequests, outcomeRateLimited, 0
	}
	limit := rcv.Spec.Limits.MaxBodyBytes
	if limit <= 0 {
		limit = defaultMaxBodyBytes
	}
	if req.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, outcomeTooLarge, 0
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return http.StatusRequestEntityTooLarge, outcomeTooLarge, 0
		}
		return http.StatusBadRequest, outcomeBadRequest, 0
	}

	token, problem, err := s.tokens.Token(ctx, rcv)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Reading the token of a receiver", "receiver", klog.KObj(rcv))
		return http.StatusInternalServerError, outcomeError, 0
	}
	// A receiver whose token cannot be read, or whose status still shows the path of a token
	// since replaced, serves nothing.
	if problem != nil || Path(token, rcv.Namespace, rcv.Name) != req.URL.Path {
		return http.StatusNotFound, outcomeNotFound, 0
	}
	if !verified(rcv.Spec.Signature, token, req.Header, body) {
		return http.StatusUnauthorized, outcomeUnauthorized, 0
	}
	if rcv.Spec.Suspend {
		return http.StatusServiceUnavailable, outcomeSuspended, 0
	}

	keys, err := lookupKeys(rcv.Spec.User, rcv.Spec.PolicyRef.Name, body)
	if _, bad := errors.AsType[errBadBody](err); bad {
		return http.StatusBadRequest, outcomeBadRequest, 0
	}
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Finding the users of a call", "receiver", klog.KObj(rcv))
		return http.StatusInternalServerError, outcomeError, 0
	}
	users, err := usersNamed(ctx, s.client, rcv.Namespace, keys)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "Finding the users of a call", "receiver", klog.KObj(rcv))
		return http.StatusInternalServerError, outcomeError, 0
	}
	if len(users) == 0 {
		return http.StatusAccepted, outcomeUnknownUser, 0
	}
	s.coalescer.add(users...)
	return http.StatusAccepted, outcomeAccepted, len(users)
}

// answer writes the status and counts the call. The body says only the outcome: never
// anything of the call, the receiver's token or its users.
func answer(w http.ResponseWriter, code int, namespace, receiver, outcome string) {
	calls.WithLabelValues(namespace, receiver, outcome).Inc()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"outcome": outcome})
}

// receiverAt finds the receiver served at path, from the cache.
func (s *Server) receiverAt(ctx context.Context, path string) (*syncv1alpha1.SyncReceiver, error) {
	if !strings.HasPrefix(path, PathPrefix) {
		return nil, nil
	}
	var list syncv1alpha1.SyncReceiverList
	if err := s.client.List(ctx, &list, client.MatchingFields{receiverPathIndex: path}); err != nil {
		return nil, fmt.Errorf("listing receivers: %w", err)
	}
	if len(list.Items) != 1 {
		return nil, nil // None, or (a hash collision that will not happen) not one.
	}
	return &list.Items[0], nil
}

// allow takes one call from the receiver's budget, or says how long until there is one.
func (s *Server) allow(rcv *syncv1alpha1.SyncReceiver) (time.Duration, bool) {
	limits := rcv.Spec.Limits
	rps, burst := float64(max(limits.RequestsPerSecond, 1)), int(max(limits.Burst, 1))
	if limits.RequestsPerSecond == 0 {
		rps = 10
	}
	if limits.Burst == 0 {
		burst = 20
	}
	s.mu.Lock()
	l := s.limiters[rcv.UID]
	if l == nil || l.limits != limits {
		l = &receiverLimiter{limits: limits, limiter: rate.NewLimiter(rate.Limit(rps), burst)}
		s.limiters[rcv.UID] = l
	}
	s.mu.Unlock()
	now := s.clock.Now()
	r := l.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return delay, false
	}
	return 0, true
}

// requestCycle asks for a cycle of user now: a new requested-at value, which the schedule
// treats as due at once, and which a running cycle (that recorded the value it started with)
// leaves for one more cycle after it.
func (s *Server) requestCycle(ctx context.Context, user types.NamespacedName) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{
		syncv1alpha1.RequestedAtAnnotation: s.clock.Now().UTC().Format(time.RFC3339Nano),
	}}})
	if err != nil {
		return err
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(syncv1alpha1.GroupVersion.WithKind("SyncUser"))
	obj.SetNamespace(user.Namespace)
	obj.SetName(user.Name)
	if err := s.client.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("annotating SyncUser %s: %w", user, err)
	}
	return nil
}
