package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// Clock tells the time; k8s.io/utils/clock's clocks satisfy it.
type Clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// Cycle is everything one cycle needs.
type Cycle struct {
	// ID names the cycle (the Job name); a held-back delete is approved by
	// naming it.
	ID string
	// User is the identity the records are kept under.
	User string
	// Scope is passed to the connectors to select the user's items.
	Scope  connector.Scope
	Policy Policy
	Source connector.Connector
	Target connector.Connector
	// Records is the record store; the cycle holds the user's lock
	// throughout.
	Records *records.Store
	// LockTimeout is how long to wait for another cycle of the same user.
	LockTimeout time.Duration
	Clock       Clock
	Log         logr.Logger
	// SpillDir holds temporary sort runs; "" means the system temp dir.
	SpillDir string
	// OnReject, when set, receives every item cleansing sets aside (a null or duplicate key),
	// with its entity's and endpoint's names, so the caller can write reports a person opens to
	// fix the data. It is not called in a dry run.
	OnReject func(entity, endpoint string, rej delta.Rejected)
}

// ErrEndpoint wraps every endpoint failure that fails a cycle.
var ErrEndpoint = errors.New("endpoint failure")

// Run runs one cycle. An error means the cycle failed as a whole (endpoint
// unreachable, records locked or corrupt, target claimed by another
// policy); item failures are not errors but are counted and reported in the
// Result. A cycle failing while reading changes nothing; one failing while
// writing keeps the records of the writes that were made, so that nothing is
// re-created.
func Run(ctx context.Context, c Cycle) (Result, error) {
	if c.Clock == nil {
		c.Clock = systemClock{}
	}
	if err := c.Policy.validate(); err != nil {
		return Result{}, fmt.Errorf("policy %s: %w", c.Policy.Name, err)
	}
	if c.Policy.Retry == (Retry{}) {
		c.Policy.Retry = DefaultRetry
	}
	log := c.Log.WithValues("cycle", c.ID, "user", c.User, "policy", c.Policy.Name)
	now := c.Clock.Now()
	result := Result{CycleID: c.ID, DryRun: c.Policy.DryRun}

	var user *records.User
	if c.Policy.DryRun {
		u, err := c.Records.OpenUser(c.User, records.OpenOptions{ReadOnly: true, LockTimeout: c.LockTimeout})
		switch {
		case errors.Is(err, records.ErrNoRecords):
		case err != nil:
			return result, err
		default:
			user = u
		}
	} else {
		if err := c.Records.ClaimTarget(c.User, c.Policy.Target.Name, c.Policy.Name, now); err != nil {
			return result, err
		}
		u, err := c.Records.OpenUser(c.User, records.OpenOptions{LockTimeout: c.LockTimeout})
		if err != nil {
			return result, err
		}
		user = u
	}
	if user != nil {
		defer user.Close()
	}

	r := &runner{cycle: c, user: user, now: now, log: log}
	var plans []*entityPlan
	defer func() {
		for _, p := range plans {
			p.close()
		}
	}()
	for _, entity := range c.Policy.Entities {
		plan, err := r.planEntity(ctx, entity)
		if err != nil {
			return result, fmt.Errorf("cycle %s of %s, entity %s: %w", c.ID, c.User, entity.Name, err)
		}
		plans = append(plans, plan)
	}
	if err := r.holdBackDeletes(plans, &result); err != nil {
		return result, err
	}
	for _, plan := range plans {
		if !c.Policy.DryRun {
			if err := r.apply(ctx, plan); err != nil {
				result.addEntity(plan)
				return result, fmt.Errorf("cycle %s of %s, entity %s: %w", c.ID, c.User, plan.entity.Name, err)
			}
		} else if err := r.countPlanned(plan); err != nil {
			result.addEntity(plan)
			return result, fmt.Errorf("cycle %s of %s, entity %s: %w", c.ID, c.User, plan.entity.Name, err)
		}
		result.addEntity(plan)
	}
	log.Info("Cycle finished", "empty", result.Empty(), "created", result.Total.Created, "updated", result.Total.Updated,
		"deleted", result.Total.Deleted, "skipped", result.Total.Skipped, "errors", result.Total.Errors)
	return result, nil
}

func (r *Result) addEntity(p *entityPlan) {
	r.Entities = append(r.Entities, EntityResult{Name: p.entity.Name, Mode: p.mode, Counts: p.counts, Reports: p.reports})
	r.Total.add(p.counts)
}

// Pairs are the record pairs the policy's entities are kept under, for callers that act on a
// user's records outside a cycle (forgetting them for a reinit).
func (p Policy) Pairs() []records.Pair {
	var pairs []records.Pair
	for _, e := range p.Entities {
		pair, _ := records.PairOf(records.Endpoint{Name: p.Source.Name, Entity: e.sourceEntity()},
			records.Endpoint{Name: p.Target.Name, Entity: e.targetEntity()})
		pairs = append(pairs, pair)
	}
	return pairs
}

func (p Policy) validate() error {
	var problems []string
	if p.Source.Name == "" || p.Target.Name == "" {
		problems = append(problems, "source and target endpoints need names")
	}
	if p.Source.Name == p.Target.Name {
		problems = append(problems, "source and target must be different endpoints")
	}
	switch p.Direction {
	case OneWay, TwoWay:
	default:
		problems = append(problems, fmt.Sprintf("unknown direction %q", p.Direction))
	}
	switch p.Conflict {
	case SourceWins, TargetWins, NewestWins, Manual:
	case "":
		if p.Direction == TwoWay {
			problems = append(problems, "a two-way policy needs a conflict rule")
		}
	default:
		problems = append(problems, fmt.Sprintf("unknown conflict rule %q", p.Conflict))
	}
	for _, e := range p.Entities {
		if len(e.Fields) == 0 {
			problems = append(problems, fmt.Sprintf("entity %s maps no fields", e.Name))
		}
		for _, m := range e.MatchOn {
			if !slices.ContainsFunc(e.Fields, func(f FieldMapping) bool { return f.Source == m }) {
				problems = append(problems, fmt.Sprintf("entity %s matches on %s, which is not mapped", e.Name, m))
			}
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

type runner struct {
	cycle Cycle
	user  *records.User // nil in a dry run of a user without records
	now   time.Time
	log   logr.Logger
}

// side is one end of an entity's pair, indexed by records.Side.
type side struct {
	index     records.Side
	endpoint  string
	entity    string
	conn      connector.Connector
	caps      connector.Capabilities
	fields    []string
	hasher    *delta.Hasher // of fields
	keyFields []string
	matchOn   []string
	isSource  bool
}

func (r *runner) view(fn func(*records.Tx) error) error {
	if r.user == nil {
		return nil
	}
	return r.user.View(fn)
}

func (r *runner) update(fn func(*records.Tx) error) error {
	if r.cycle.Policy.DryRun {
		return nil
	}
	return r.user.Update(fn)
}

func originToken(pair records.Pair, from records.Side, key string) string {
	return originPrefix(pair, from) + key
}

// originPrefixes caches originPrefix: a cycle asks for it once per item written.
var originPrefixes sync.Map // [2]string by Pair

// originPrefix is the start of the origin tokens of items copied from side from of pair.
func originPrefix(pair records.Pair, from records.Side) string {
	if v, ok := originPrefixes.Load(pair); ok {
		return v.([2]string)[from]
	}
	sum := sha256.Sum256([]byte(pair.String()))
	var prefixes [2]string
	for s := range prefixes {
		prefixes[s] = fmt.Sprintf("chainsync1:%s:%d:", hex.EncodeToString(sum[:6]), s)
	}
	originPrefixes.Store(pair, prefixes)
	return prefixes[from]
}

// parseOrigin returns the side and key an item was copied from, when its
// origin token was written for this pair.
func parseOrigin(pair records.Pair, origin string) (records.Side, string, bool) {
	if origin == "" {
		return 0, "", false
	}
	for _, from := range []records.Side{0, 1} {
		prefix := originToken(pair, from, "")
		if key, ok := strings.CutPrefix(origin, prefix); ok {
			return from, key, true
		}
	}
	return 0, "", false
}

// translate renames an entry's fields from side from to side to.
func translate(fields map[string]connector.Value, from, to *side) map[string]connector.Value {
	out := make(map[string]connector.Value, len(to.fields))
	for i, name := range from.fields {
		if v, ok := fields[name]; ok {
			out[to.fields[i]] = v
		} else {
			out[to.fields[i]] = connector.Null()
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
