// Package cycle is what a cycle Job's pod runs (`chainsync cycle`): it reads its policy and
// users from the API, runs the sync engine for each user with bounded concurrency, and writes
// each user's result to that SyncUser's status, so the result outlives the pod.
package cycle

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sync/errgroup"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	syncv1alpha1 "github.com/chainsync/chainsync/api/v1alpha1"
	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/connector/csv"
	"github.com/chainsync/chainsync/internal/engine"
	"github.com/chainsync/chainsync/internal/jobargs"
	"github.com/chainsync/chainsync/internal/records"
)

// FieldManager is who a cycle's writes of SyncUser status are recorded as in managedFields.
const FieldManager = "chainsync-cycle"

// crashHooks let tests in this package kill a cycle process (SIGKILL) where a crash must be
// survived: at a named point, or from inside a connector. They do nothing otherwise.
var crashHooks = struct {
	at   func(point string)
	wrap func(side string, c connector.Connector) connector.Connector
}{
	at:   func(string) {},
	wrap: func(_ string, c connector.Connector) connector.Connector { return c },
}

// engineRun runs one user's cycle through the engine. A benchmark build replaces it (see
// engine_stub.go) to move more users than real cycles could in its time.
var engineRun = engine.Run

// The points crashHooks.at is called at.
const (
	crashBeforeStatus   = "before-status"   // the engine finished; its result not written yet
	crashAfterClear     = "after-clear"     // a reinit clear forgot the records; not relinked yet
	crashForgetDetached = "forget-detached" // a deleted user's records taken out, not removed
	crashForgetReleased = "forget-released" // one of its claims released, perhaps not all
)

// Runner runs one cycle Job's share of users, as its arguments say.
type Runner struct {
	jobargs.Cycle
	Client client.Client
	// FSRoot, when set, prefixes every absolute path: the local Job executor emulates the pod's
	// filesystem under it (--fs-root).
	FSRoot string
	Clock  engine.Clock
	Log    logr.Logger
}

// Run cycles users (SyncUser names). It fails only when the cycle cannot run at all (policy,
// Secrets or store unreadable); a user whose cycle fails gets that failure in its status.
func (r *Runner) Run(ctx context.Context, users []string) error {
	if r.Clock == nil {
		r.Clock = systemClock{}
	}
	policy := &syncv1alpha1.SyncPolicy{}
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: r.Policy}, policy); err != nil {
		return fmt.Errorf("reading SyncPolicy %s/%s: %w", r.Namespace, r.Policy, err)
	}
	if err := checkDestinations(policy, r.AllowedDestinations); err != nil {
		return err
	}
	secrets, err := readSecrets(policy, r.FSRoot, r.Secrets)
	if err != nil {
		return err
	}
	store, err := records.Open(filepath.Join(r.FSRoot, r.Store))
	if err != nil {
		return fmt.Errorf("opening the record store: %w", err)
	}
	eps := endpoints{policy: policy, secrets: secrets, fsRoot: r.FSRoot, volumes: r.Volumes}

	onPolicy, err := r.readUsers(ctx, policy, users)
	if err != nil {
		return err
	}
	rejected := newRejectedRows(store, policy)
	statuses := newUserStatusWriter(r.Client, r.Namespace, r.Clock, policy)
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, r.Concurrency))
	for _, name := range users {
		user, ok := onPolicy[name]
		if !ok {
			r.Log.Info("Skipping user: deleted, or moved to another policy, since the Job was launched", "user", klog.KRef(r.Namespace, name))
			continue
		}
		g.Go(func() error {
			return r.cycleUser(ctx, policy, eps, store, rejected, statuses, user)
		})
	}
	err = g.Wait()
	if !policy.Spec.DryRun {
		if rerr := rejected.close(); rerr != nil {
			r.Log.Error(rerr, "Writing the rejected rows reports")
		}
	}
	return err
}

// usersPerPage is how many users a page of the List of a policy's users holds.
const usersPerPage = 500

// readUsers reads the Job's users that are still on the policy, by name: with a paged List of
// the policy's users when that takes a quarter of the requests a Get each would, or fewer; else
// with a Get each, so that a Job of a few users among thousands does not transfer all the
// others. (At 10,000 users the Jobs held about a fortieth of their policy's users each, and
// Gets were a quarter of all the API requests a user-step cost.)
func (r *Runner) readUsers(ctx context.Context, policy *syncv1alpha1.SyncPolicy, names []string) (map[string]*syncv1alpha1.SyncUser, error) {
	users := make(map[string]*syncv1alpha1.SyncUser, len(names))
	pages := (int(policy.Status.Users.Assigned) + usersPerPage - 1) / usersPerPage
	if 4*pages <= len(names) {
		for _, name := range names {
			users[name] = nil
		}
		return users, r.listUsersOn(ctx, policy.Name, users)
	}
	for _, name := range names {
		user := &syncv1alpha1.SyncUser{}
		err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, user)
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading SyncUser %s: %w", name, err)
		case user.Status.Policy == policy.Name:
			users[name] = user
		}
	}
	return users, nil
}

// listUsersOn fills in the users named in want (their keys) from the users on the policy, read a
// page at a time; those not on it are taken out.
func (r *Runner) listUsersOn(ctx context.Context, policy string, want map[string]*syncv1alpha1.SyncUser) error {
	continueAt := ""
	for {
		var page syncv1alpha1.SyncUserList // A page of its own: the users point into it.
		if err := r.Client.List(ctx, &page, client.InNamespace(r.Namespace), client.MatchingFields{syncv1alpha1.UserPolicyField: policy},
			client.Limit(usersPerPage), client.Continue(continueAt)); err != nil {
			return fmt.Errorf("reading the SyncUsers on policy %s: %w", policy, err)
		}
		for i := range page.Items {
			if _, ok := want[page.Items[i].Name]; ok {
				want[page.Items[i].Name] = &page.Items[i]
			}
		}
		if continueAt = page.Continue; continueAt == "" {
			break
		}
	}
	for name, user := range want {
		if user == nil {
			delete(want, name)
		}
	}
	return nil
}

// cycleUser runs one user's cycle and writes its result. Only a failure to write the result is
// returned: anything else is the user's result.
func (r *Runner) cycleUser(ctx context.Context, policy *syncv1alpha1.SyncPolicy, eps endpoints, store *records.Store,
	rejected *rejectedRows, statuses *userStatusWriter, user *syncv1alpha1.SyncUser) error {
	log := r.Log.WithValues("user", klog.KObj(user))
	if c := user.Status.LastCycle; c != nil && c.ID == r.Job && c.CompletionTime != nil {
		// An earlier attempt of this Job, its pod killed and retried, cycled the user and wrote
		// the result the operator counted: a second cycle would replace it under the same ID,
		// uncounted.
		log.Info("Skipping user: already cycled by an earlier attempt of this Job")
		return nil
	}
	if user.DeletionTimestamp != nil {
		// Its records may be being deleted: a cycle now would write them again.
		log.Info("Skipping user: being deleted")
		return nil
	}

	started := metav1.NewTime(r.Clock.Now())
	uc := planUserCycle(policy, user, r.Job, started.Time)
	p, req := uc.policy, uc.requests

	onSource, sourceRejected := rejected.forUser("source")
	onTarget, targetRejected := rejected.forUser("target")
	eps.onRejectedRow = map[string]func(string, csv.RejectedRow){"source": onSource, "target": onTarget}
	result, err := r.runEngine(ctx, user, uc, eps, store)
	ended := metav1.NewTime(r.Clock.Now())
	status := cycleStatus(policy.Name, r.Job, started, ended, result, err)
	status.RejectedRows = int32(sourceRejected() + targetRejected())
	keepItemReports(log, store, uc.identity, cycleReport(policy, r.Job, started.Time, ended.Time, result, err, eps.secrets), &status)
	if err != nil {
		log.Error(err, "Cycle failed")
	}
	lastComplete := user.Status.LastCompleteTime
	if err == nil && !p.DryRun && comparedEverything(result) {
		lastComplete = &ended
	}
	status.Reinit = req.reinit
	handledReinit := user.Status.LastHandledReinit
	if req.reinit != "" && err == nil && !p.DryRun {
		handledReinit = req.reinit
	}
	crashHooks.at(crashBeforeStatus)
	return statuses.write(ctx, user, cycleOutcome{result: status, lastComplete: lastComplete,
		handledRequestedAt: req.requestedAt, handledReinit: handledReinit})
}

// completeDue says whether this cycle must compare everything: completeEvery has passed since
// the user's last Complete cycle, or none is known.
func completeDue(policy *syncv1alpha1.SyncPolicy, user *syncv1alpha1.SyncUser, now time.Time) bool {
	every, err := time.ParseDuration(policy.Spec.Schedule.CompleteEvery)
	if err != nil || every <= 0 {
		every = 24 * time.Hour
	}
	last := user.Status.LastCompleteTime
	return last == nil || !now.Before(last.Add(every))
}

// comparedEverything is true when no entity was read incrementally.
func comparedEverything(result engine.Result) bool {
	for _, e := range result.Entities {
		if e.Mode == engine.Incremental {
			return false
		}
	}
	return len(result.Entities) > 0
}

func (r *Runner) runEngine(ctx context.Context, user *syncv1alpha1.SyncUser, uc userCycle, eps endpoints, store *records.Store) (engine.Result, error) {
	identity, p := uc.identity, uc.policy
	if err := releaseEarlierClaims(store, identity, p.Target.Name, user); err != nil {
		return engine.Result{}, err
	}
	source, err := eps.open(ctx, "source")
	if err != nil {
		return engine.Result{}, fmt.Errorf("%w: %w", engine.ErrEndpoint, err)
	}
	defer source.Close()
	target, err := eps.open(ctx, "target")
	if err != nil {
		return engine.Result{}, fmt.Errorf("%w: %w", engine.ErrEndpoint, err)
	}
	defer target.Close()
	source, target = crashHooks.wrap("source", source), crashHooks.wrap("target", target)
	cycle := engine.Cycle{
		ID: r.Job, User: identity, Scope: uc.scope, Policy: p,
		Source: source, Target: target, Records: store,
		LockTimeout: r.LockTimeout, Clock: r.Clock, Log: r.Log,
	}
	attempt := func() (engine.Result, error) {
		if uc.clear != nil {
			if err := r.clearRecords(store, identity, p, *uc.clear); err != nil {
				return engine.Result{}, err
			}
		}
		if p.DryRun {
			return engineRun(ctx, cycle)
		}
		reports, err := newRejectReports(store, identity, p)
		if err != nil {
			return engine.Result{}, fmt.Errorf("preparing the cleansing reports: %w", err)
		}
		cycle.OnReject = reports.add
		result, err := engineRun(ctx, cycle)
		if rerr := reports.close(); rerr != nil {
			r.Log.Error(rerr, "Writing the cleansing reports", "user", identity)
		}
		return result, err
	}
	result, err := attempt()
	if errors.Is(err, records.ErrClaimed) {
		// Another policy holds the target for this person: only then is it worth asking whether
		// that claim still protects anyone.
		released, rerr := r.releaseAbandonedClaim(ctx, store, identity, p.Target.Name, user)
		if rerr != nil {
			return result, rerr
		}
		if released {
			return attempt()
		}
	}
	return result, err
}

// clearRecords carries out a `reinit: clear` request: it forgets the records of the policy's
// pairs, so the engine's cycle is an Initial one that relinks by matchOn, unless the records say
// that this very request was carried out already, by a cycle killed before it could write its
// result. Clearing again would forget the links that cycle rebuilt and settle every edit made
// since as a conflict; the re-run only finishes the relinking and reports the request handled.
func (r *Runner) clearRecords(store *records.Store, identity string, p engine.Policy, c records.Cleared) error {
	// Claimed first, as the engine does, so that a policy refused the target clears nothing.
	if err := store.ClaimTarget(identity, p.Target.Name, p.Name, c.At); err != nil {
		return err
	}
	u, err := store.OpenUser(identity, records.OpenOptions{LockTimeout: r.LockTimeout})
	if err != nil {
		return err
	}
	defer u.Close()
	var last records.Cleared
	var found bool
	if err := u.View(func(tx *records.Tx) (err error) {
		last, found, err = tx.LastCleared()
		return err
	}); err != nil {
		return fmt.Errorf("reading the records of %s: %w", identity, err)
	}
	if found && last.Same(c) {
		r.Log.Info("Records already cleared for this request", "user", identity, "request", c.Request, "clearedBy", last.CycleID)
		return nil
	}
	if err := u.Clear(p.Pairs(), c); err != nil {
		return fmt.Errorf("clearing the records of %s: %w", identity, err)
	}
	crashHooks.at(crashAfterClear)
	return nil
}

// releaseEarlierClaims hands the user's claim on the target over from the policies the user has
// left (its earlier chain steps, or a policyRef it was moved off): a claim held by a policy the
// user never was on belongs to another SyncUser of the same identity, and stays.
func releaseEarlierClaims(store *records.Store, identity, target string, user *syncv1alpha1.SyncUser) error {
	for _, h := range user.Status.History {
		if h.Policy == user.Status.Policy {
			continue
		}
		if err := store.ReleaseTarget(identity, target, h.Policy); err != nil {
			return fmt.Errorf("releasing %s's claim on %s held by earlier policy %s: %w", identity, target, h.Policy, err)
		}
	}
	return nil
}

// readSecrets reads every Secret key the policy names from the files the kubelet mounted, once.
func readSecrets(policy *syncv1alpha1.SyncPolicy, fsRoot, secretsDir string) (secretValues, error) {
	values := secretValues{}
	for _, ref := range policy.SecretKeys() {
		if values[ref.Name] == nil {
			values[ref.Name] = map[string][]byte{}
		}
		// The API admits only DNS names and Secret key characters; checked again here, because a
		// path that left the Secrets directory would send another file as a password.
		if !filepath.IsLocal(ref.Name) || !filepath.IsLocal(ref.Key) || strings.ContainsRune(ref.Name+ref.Key, filepath.Separator) {
			return nil, fmt.Errorf("Secret %q key %q is not a plain name", ref.Name, ref.Key)
		}
		b, err := os.ReadFile(filepath.Join(fsRoot, filepath.FromSlash(jobargs.SecretPath(secretsDir, ref.Name, ref.Key))))
		if errors.Is(err, os.ErrNotExist) {
			continue // Reported by secretValues.get as a missing key, in the endpoint's terms.
		}
		if err != nil {
			return nil, fmt.Errorf("reading key %q of Secret %q: %w", ref.Key, ref.Name, err)
		}
		values[ref.Name][ref.Key] = b
	}
	return values, nil
}

// checkDestinations refuses to run a policy whose endpoints would send Secret values anywhere the
// operator did not check against the Secrets' allowed destinations when it launched the Job: the
// policy may have been edited since.
func checkDestinations(policy *syncv1alpha1.SyncPolicy, allowed []string) error {
	for _, use := range policy.SecretUses() {
		if !slices.Contains(allowed, use.Destination) {
			return fmt.Errorf("%s: %s was not checked against Secret %q when this Job was launched (the policy changed since); nothing was sent",
				use.Field, use.Destination, use.Name)
		}
	}
	return nil
}

// Forget deletes users' records from the store and drops their claims, for SyncUsers deleted
// with recordsOnDelete: Delete. It waits for a running cycle of the same user to finish.
func (r *Runner) Forget(ctx context.Context, users []string) error {
	store, err := records.Open(filepath.Join(r.FSRoot, r.Store))
	if err != nil {
		return fmt.Errorf("opening the record store: %w", err)
	}
	var errs []error
	for _, name := range users {
		user := &syncv1alpha1.SyncUser{}
		if err := r.Client.Get(ctx, client.ObjectKey{Namespace: r.Namespace, Name: name}, user); err != nil {
			errs = append(errs, fmt.Errorf("reading SyncUser %s: %w", name, err))
			continue
		}
		if err := forgetUser(store, RecordsIdentity(user), r.LockTimeout); err != nil {
			errs = append(errs, err)
			continue
		}
		r.Log.Info("Deleted records", "user", klog.KObj(user))
	}
	return errors.Join(errs...)
}

// forgetUser deletes a user's records and releases its claims. Each step can be cut short by a
// kill and done again: the Job's pod is retried.
func forgetUser(store *records.Store, identity string, lockTimeout time.Duration) error {
	if err := store.DetachUser(identity, lockTimeout); err != nil {
		return err
	}
	crashHooks.at(crashForgetDetached)
	claims, err := store.Claims()
	if err != nil {
		return err
	}
	for _, c := range claims {
		if c.User == identity {
			if err := store.ReleaseTarget(c.User, c.Target, c.Policy); err != nil {
				return err
			}
			crashHooks.at(crashForgetReleased)
		}
	}
	return store.PurgeDetached()
}

// requests are the imperative annotations a cycle acts on.
type requests struct {
	requestedAt   string
	reinit        string
	approvedCycle string
}

func requestsOf(user *syncv1alpha1.SyncUser) requests {
	ann := user.Annotations
	req := requests{requestedAt: ann[syncv1alpha1.RequestedAtAnnotation], approvedCycle: ann[syncv1alpha1.ApproveDeletesAnnotation]}
	if v := ann[syncv1alpha1.ReinitAnnotation]; v != user.Status.LastHandledReinit {
		req.reinit = v
	}
	return req
}

// widestMode is the mode a person needs to know: Initial if any entity was, else Complete if
// any was, else Incremental.
func widestMode(result engine.Result) syncv1alpha1.CycleMode {
	modes := []engine.Mode{}
	for _, e := range result.Entities {
		modes = append(modes, e.Mode)
	}
	for _, m := range []engine.Mode{engine.Initial, engine.Complete, engine.Incremental} {
		if slices.Contains(modes, m) {
			return cycleMode(m)
		}
	}
	return ""
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// shorten keeps a message within the API's bound.
func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
