package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// observed is what one side's read found, relative to the records.
type observed struct {
	read bool
	// changed and deleted are keyed by the link's side-0 key.
	changed map[string]delta.Entry
	deleted map[string]bool
	// unchanged holds current entries of linked items only where the other
	// side drifted (a one-way restore needs the source's content).
	unchanged map[string]delta.Entry
	inserts   *insertList
	// held are linked items, by side-0 key, that the read could not deliver
	// (see unread): neither deleted nor changed, their links left as they are.
	held      map[string]bool
	watermark connector.Watermark
}

// unread is what one side's read could not deliver: items set aside by
// cleansing or by the connector (null or duplicate keys) and items that
// failed to read. They exist but are missing from the read, so a linked item
// among them must not be taken for deleted: that would delete the person's
// data on the other side because their export became ambiguous. The maps
// hold the indexes of the items' reports (all copies of a duplicate key).
type unread struct {
	byKey, byID map[string][]int
	// anonymous are those with neither key nor ID, which could be any linked
	// item missing from the read; anonymousKind is the first one's report kind.
	anonymous     int
	anonymousKind string
}

func (u *unread) add(key, id string, report int, kind string) {
	if !delta.Blank(key) {
		u.byKey[key] = append(u.byKey[key], report)
	}
	if !delta.Blank(id) {
		u.byID[id] = append(u.byID[id], report)
	}
	if delta.Blank(key) && delta.Blank(id) {
		if u.anonymous == 0 {
			u.anonymousKind = kind
		}
		u.anonymous++
	}
}

// reports returns the reports of the unread items a record may be about.
func (u *unread) reports(rec delta.Recorded) []int {
	if r, ok := u.byKey[rec.Key]; ok {
		return r
	}
	if delta.Blank(rec.ID) {
		return nil
	}
	return u.byID[rec.ID]
}

// action is one write to one side.
type action struct {
	op   connector.Op
	side records.Side // the side written
	// from is the content copied, from the other side (create, update).
	from delta.Entry
	// link is the existing link (update, delete, re-create).
	link    records.Link
	hasLink bool
	// deleteKey is the key, on the other side, of the deleted item that
	// this delete propagates.
	deleteKey string
}

// sourceKey identifies the action's item on the side it is copied from, for
// retries and pending deletes.
func (a action) sourceKey() string {
	if a.op == connector.OpDelete {
		return a.deleteKey
	}
	return a.from.Key
}

type entityPlan struct {
	entity      Entity
	pair        records.Pair
	sides       [2]*side
	mode        Mode
	state       records.PairState
	openIntents []records.Intent
	pending     map[string]records.Pending // by pendingID
	obs         [2]*observed

	actions  []action
	putLinks []records.Link
	dropKeys []string // side-0 keys of links to forget
	// newPending are entries to store; seenPending are ids still current.
	newPending  []records.Pending
	seenPending map[string]bool
	// creates, by the side written, are made after its actions.
	creates [2]creates
	counts  Counts
	reports []ItemReport
	reset   bool
}

func pendingID(kind records.PendingKind, s records.Side, key string) string {
	return string(kind) + "\x00" + strconv.Itoa(int(s)) + "\x00" + key
}

func (p *entityPlan) report(s *side, kind, key, id, reason string) {
	p.reports = append(p.reports, ItemReport{Endpoint: s.endpoint, Key: key, ID: id, Kind: kind, Reason: reason})
}

// actionReport is a report about an action's item: the item written (not
// yet known for a create) and the item on the other side it copies or
// whose delete it follows.
func (p *entityPlan) actionReport(a action, kind, reason string) ItemReport {
	w, o := a.side, a.side.Other()
	rep := ItemReport{Endpoint: p.sides[w].endpoint, OtherEndpoint: p.sides[o].endpoint, OtherKey: a.sourceKey(), Kind: kind, Reason: reason}
	if a.hasLink {
		if a.op != connector.OpCreate {
			rep.Key, rep.ID = a.link.Sides[w].Key, a.link.Sides[w].ID
		}
		rep.OtherID = a.link.Sides[o].ID
	}
	if a.op != connector.OpDelete {
		rep.OtherID = a.from.ID
	}
	return rep
}

// createsProvable refuses a policy whose creates on an endpoint could not be recognised after a
// crash between the endpoint's commit and the records': without an origin on the endpoint or
// matchOn, the next cycle would create every such item again. A dry run creates nothing.
func createsProvable(pol Policy, e Entity, src, tgt *side) error {
	if pol.DryRun || len(e.MatchOn) > 0 {
		return nil
	}
	receivers := []*side{tgt}
	if pol.Direction == TwoWay {
		receivers = append(receivers, src)
	}
	for _, s := range receivers {
		if !s.caps.Origin {
			return connector.InvalidConfig(fmt.Errorf("entities[%s]: %s cannot show after a crash which of its items a cycle created, "+
				"so they could be created twice; set matchOn (fields that identify an item on both sides)", e.Name, s.endpoint))
		}
	}
	return nil
}

func (r *runner) planEntity(ctx context.Context, e Entity) (*entityPlan, error) {
	pol := r.cycle.Policy
	src := &side{endpoint: pol.Source.Name, entity: e.sourceEntity(), conn: r.cycle.Source, keyFields: e.SourceKeyFields, matchOn: e.MatchOn, isSource: true}
	tgt := &side{endpoint: pol.Target.Name, entity: e.targetEntity(), conn: r.cycle.Target, keyFields: e.TargetKeyFields}
	for _, f := range e.Fields {
		src.fields = append(src.fields, f.Source)
		tgt.fields = append(tgt.fields, f.Target)
	}
	src.hasher, tgt.hasher = delta.NewHasher(src.fields), delta.NewHasher(tgt.fields)
	for _, m := range e.MatchOn {
		i := slices.IndexFunc(e.Fields, func(f FieldMapping) bool { return f.Source == m })
		tgt.matchOn = append(tgt.matchOn, e.Fields[i].Target)
	}
	pair, srcIndex := records.PairOf(records.Endpoint{Name: src.endpoint, Entity: src.entity}, records.Endpoint{Name: tgt.endpoint, Entity: tgt.entity})
	src.index, tgt.index = srcIndex, srcIndex.Other()
	src.caps, tgt.caps = src.conn.Capabilities(), tgt.conn.Capabilities()
	if err := createsProvable(pol, e, src, tgt); err != nil {
		return nil, err
	}
	p := &entityPlan{entity: e, pair: pair, pending: map[string]records.Pending{}, seenPending: map[string]bool{}}
	p.sides[src.index], p.sides[tgt.index] = src, tgt

	err := r.view(func(tx *records.Tx) error {
		var err error
		if p.state, err = tx.State(pair); err != nil {
			return err
		}
		for i, err := range tx.Intents(pair) {
			if err != nil {
				return err
			}
			p.openIntents = append(p.openIntents, i)
		}
		for pe, err := range tx.PendingItems(pair) {
			if err != nil {
				return err
			}
			p.pending[pendingID(pe.Kind, pe.Side, pe.Key)] = pe
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("loading records: %w", err)
	}
	p.mode = r.chooseMode(p)
	if p.mode == Initial && p.state.Initialized {
		p.reset = true // a reinit request: forget the pair's records
		p.pending = map[string]records.Pending{}
		p.openIntents = nil
	}

	// The target is read first so that a one-way source read knows which
	// unchanged source items must be restored onto a drifted target.
	for _, s := range []*side{tgt, src} {
		if s == tgt && pol.Direction == OneWay && p.mode == Incremental {
			p.obs[s.index] = &observed{}
			continue
		}
		obs, err := r.readSide(ctx, p, s)
		if obs != nil {
			p.obs[s.index] = obs
		}
		if err != nil {
			p.close()
			return nil, fmt.Errorf("reading %s/%s: %w", s.endpoint, s.entity, err)
		}
	}
	if err := r.decide(p); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (r *runner) chooseMode(p *entityPlan) Mode {
	pol := r.cycle.Policy
	if !p.state.Initialized || slices.Contains(pol.Reinit, p.entity.Name) {
		return Initial
	}
	incremental := func(s *side) bool {
		_, ok := s.conn.(connector.ChangeReader)
		return s.caps.Incremental && ok && len(s.keyFields) == 0 && p.state.Watermarks[s.index] != ""
	}
	switch {
	case pol.Complete,
		p.state.MappingFingerprint != p.entity.fingerprint(),
		// Open intents, retries, conflicts, quarantined items and held-back
		// deletes are all looked at again, which needs a full read.
		len(p.openIntents) > 0, len(p.pending) > 0,
		!incremental(p.sides[0]) && !(pol.Direction == OneWay && !p.sides[0].isSource),
		!incremental(p.sides[1]) && !(pol.Direction == OneWay && !p.sides[1].isSource):
		return Complete
	}
	return Incremental
}

// readSide reads one side of the pair in the plan's mode: only what changed (Incremental), or
// everything against the records. Items it cannot deliver are reported, and kept from being
// taken for deleted.
func (r *runner) readSide(ctx context.Context, p *entityPlan, s *side) (_ *observed, err error) {
	rd := &sideRead{
		obs: &observed{read: true, changed: map[string]delta.Entry{}, deleted: map[string]bool{}, unchanged: map[string]delta.Entry{},
			held: map[string]bool{}, inserts: newInsertList(r.cycle.SpillDir)},
		missing:   unread{byKey: map[string][]int{}, byID: map[string][]int{}},
		req:       connector.ReadRequest{Scope: r.cycle.Scope, Entity: s.entity, Fields: append(slices.Clone(s.fields), s.keyFields...)},
		cleansing: delta.Cleansing{Fields: s.fields, KeyFields: s.keyFields, SpillDir: r.cycle.SpillDir},
	}
	defer func() {
		if err != nil {
			rd.obs.inserts.close()
		}
	}()
	cr, canIncrement := s.conn.(connector.ChangeReader)
	if canIncrement && s.caps.Incremental {
		// Taken before reading: a change made during the read is seen
		// again next cycle instead of lost.
		wm, err := cr.CurrentWatermark(ctx, rd.req)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrEndpoint, err)
		}
		rd.obs.watermark = wm
	}
	rd.onItemError = func(err error) {
		p.counts.Errors++
		var ie *connector.ItemError
		errors.As(err, &ie)
		p.report(s, ReportError, "", ie.ID, err.Error())
		rd.missing.add("", ie.ID, len(p.reports)-1, ReportError)
	}
	rd.onReject = func(rej delta.Rejected) {
		p.counts.Skipped++
		p.report(s, string(rej.Reason), rej.Entry.Key, rej.Entry.ID, "set aside by cleansing")
		rd.missing.add(rej.Entry.Key, rej.Entry.ID, len(p.reports)-1, string(rej.Reason))
		if r.cycle.OnReject != nil && !r.cycle.Policy.DryRun {
			r.cycle.OnReject(p.entity.Name, s.endpoint, rej)
		}
	}
	if p.mode == Incremental {
		return r.readChanges(ctx, p, s, cr, rd)
	}
	return r.readAll(ctx, p, s, rd)
}

// sideRead is one side's read in progress: what it observed, what it could not deliver, and
// how it reports both.
type sideRead struct {
	obs         *observed
	missing     unread
	req         connector.ReadRequest
	cleansing   delta.Cleansing
	onItemError func(error)
	onReject    func(delta.Rejected)
}

// readChanges reads only what changed on s since the pair's watermark, and looks each change up
// in the records.
func (r *runner) readChanges(ctx context.Context, p *entityPlan, s *side, cr connector.ChangeReader, rd *sideRead) (*observed, error) {
	obs := rd.obs
	for item, err := range cr.ReadChanges(ctx, rd.req, p.state.Watermarks[s.index]) {
		if err != nil {
			if connector.IsItemError(err) {
				rd.onItemError(err)
				continue
			}
			return nil, fmt.Errorf("%w: %w", ErrEndpoint, err)
		}
		err := r.view(func(tx *records.Tx) error {
			if item.Deleted {
				l, ok, err := tx.Link(p.pair, s.index, item.ID)
				if ok && !l.Sides[s.index].Gone {
					obs.deleted[l.Sides[0].Key] = true
				}
				return err
			}
			e, ok := rd.cleansing.Project(item)
			if !ok {
				rd.onReject(delta.Rejected{Reason: delta.NullKey, Entry: e})
				return nil
			}
			l, ok, err := tx.Link(p.pair, s.index, e.Key)
			switch {
			case err != nil:
				return err
			case !ok:
				return obs.inserts.add(e)
			case l.Sides[s.index].Hash != e.Hash:
				obs.changed[l.Sides[0].Key] = e
				delete(obs.deleted, l.Sides[0].Key)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("looking up records: %w", err)
		}
	}
	return obs, nil
}

// readAll reads everything on s, cleansed and sorted, and merges it against the records: what
// is new, changed, gone, and (where the other side drifted) unchanged.
func (r *runner) readAll(ctx context.Context, p *entityPlan, s *side, rd *sideRead) (*observed, error) {
	obs := rd.obs
	other := p.obs[s.index.Other()]
	driftedOther := func(key0 string) bool {
		if other == nil {
			return false
		}
		_, changed := other.changed[key0]
		return changed || other.deleted[key0]
	}
	sorter, sorted, err := rd.cleansing.Prepare(s.conn.ReadAll(ctx, rd.req), rd.onItemError, rd.onReject)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrEndpoint, err)
	}
	defer sorter.Close()
	err = r.view(func(tx *records.Tx) error {
		recorded := func(yield func(delta.Recorded, error) bool) {
			if p.reset {
				return
			}
			for l, err := range tx.Links(p.pair, s.index) {
				st := l.Sides[s.index]
				hash := st.Hash
				if st.Gone {
					hash = ""
				}
				if !yield(delta.Recorded{Key: st.Key, ID: st.ID, Hash: hash, Ref: l.Sides[0].Key}, err) {
					return
				}
			}
		}
		for c, err := range delta.Merge(sorted, recorded) {
			if err != nil {
				return err
			}
			switch c.Kind {
			case delta.Insert:
				if err := obs.inserts.add(c.Current); err != nil {
					return err
				}
			case delta.Update:
				obs.changed[c.Recorded.Ref] = c.Current
			case delta.Delete:
				if c.Recorded.Hash != "" && !p.holdUnread(s, obs, &rd.missing, c.Recorded) {
					obs.deleted[c.Recorded.Ref] = true
				}
			case delta.Unchanged:
				if driftedOther(c.Recorded.Ref) {
					obs.unchanged[c.Recorded.Ref] = c.Current
				}
			}
		}
		return nil
	})
	if r.user == nil && err == nil && !p.reset {
		// A dry run of a new user: no records, every item is new.
		for e, err := range sorted {
			if err != nil {
				return nil, err
			}
			if err := obs.inserts.add(e); err != nil {
				return nil, err
			}
		}
	}
	if err != nil {
		if errors.Is(err, records.ErrCorrupt) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrEndpoint, err)
	}
	return obs, nil
}

// holdUnread holds a recorded item missing from the read of s when it may be
// one the read could not deliver, and says so in its report.
func (p *entityPlan) holdUnread(s *side, obs *observed, missing *unread, rec delta.Recorded) bool {
	other := p.sides[s.index.Other()].endpoint
	if reps := missing.reports(rec); len(reps) > 0 {
		for _, i := range reps {
			p.reports[i].Reason += fmt.Sprintf("; synced before, so not taken for deleted: its copy on %s is kept as is until it can be read again", other)
		}
		obs.held[rec.Ref] = true
		return true
	}
	if missing.anonymous == 0 {
		return false
	}
	// Which linked item an item without key or ID is cannot be told, so
	// every missing one waits until those can be read.
	p.counts.Skipped++
	p.report(s, missing.anonymousKind, rec.Key, rec.ID, fmt.Sprintf(
		"missing from %s, which could not read the key of %d item(s) and this may be one of them; not taken for deleted: its copy on %s is kept as is until they can be read",
		s.endpoint, missing.anonymous, other))
	obs.held[rec.Ref] = true
	return true
}
