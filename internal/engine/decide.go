package engine

import (
	"fmt"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// decide turns what both sides' reads found into writes and record updates.
func (r *runner) decide(p *entityPlan) error {
	if err := r.holdLinks(p); err != nil {
		return fmt.Errorf("holding items that could not be read: %w", err)
	}
	keys := map[string]bool{}
	for _, o := range p.obs {
		for k := range o.changed {
			keys[k] = true
		}
		for k := range o.deleted {
			keys[k] = true
		}
	}
	links := map[string]records.Link{}
	err := r.view(func(tx *records.Tx) error {
		for k := range keys {
			l, ok, err := tx.Link(p.pair, 0, k)
			if err != nil {
				return err
			}
			if ok {
				links[k] = l
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("loading links: %w", err)
	}
	if err := r.relinkRecreated(p, links, keys); err != nil {
		return fmt.Errorf("settling re-created items: %w", err)
	}
	for _, key0 := range sortedKeys(keys) {
		l, ok := links[key0]
		if !ok {
			continue
		}
		r.decideLink(p, l)
	}
	return r.pairInserts(p)
}

// holdLinks leaves the links of held items (see observed.held) as they are:
// no write to either side, whatever the other side did, and their pending
// entries kept, until the item can be read again and the next cycle compares
// it with the unchanged records.
func (r *runner) holdLinks(p *entityPlan) error {
	held := map[string]bool{}
	for _, o := range p.obs {
		for k := range o.held {
			held[k] = true
		}
	}
	for key0 := range held {
		for _, o := range p.obs {
			delete(o.changed, key0)
			delete(o.deleted, key0)
			delete(o.unchanged, key0)
		}
	}
	return r.view(func(tx *records.Tx) error {
		for key0 := range held {
			l, ok, err := tx.Link(p.pair, 0, key0)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			for _, kind := range []records.PendingKind{records.Failing, records.Conflict, records.DeleteAwaitingApproval, records.Quarantined} {
				for s := range records.Side(2) {
					for _, st := range l.Sides {
						p.seenPending[pendingID(kind, s, st.Key)] = true
					}
				}
			}
		}
		return nil
	})
}

type sideChange struct {
	changed bool
	deleted bool
	entry   delta.Entry
}

func (p *entityPlan) changeOf(s records.Side, key0 string) sideChange {
	o := p.obs[s]
	if e, ok := o.changed[key0]; ok {
		return sideChange{changed: true, entry: e}
	}
	return sideChange{deleted: o.deleted[key0]}
}

// stateOf is what the records will hold for an entry that is in sync.
func stateOf(e delta.Entry) records.SideState {
	return records.SideState{Key: e.Key, ID: e.ID, Hash: e.Hash, ModTime: e.ModTime}
}

func (r *runner) decideLink(p *entityPlan, l records.Link) {
	pol := r.cycle.Policy
	key0 := l.Sides[0].Key
	c := [2]sideChange{p.changeOf(0, key0), p.changeOf(1, key0)}
	srcI := p.sides[0].index
	if !p.sides[0].isSource {
		srcI = 1
	}
	tgtI := srcI.Other()

	// A link with a side gone (a delete not propagated) is inert: remember
	// the survivor's content and touch nothing.
	if l.Sides[0].Gone || l.Sides[1].Gone {
		for i := range 2 {
			if c[i].changed {
				l.Sides[i] = stateOf(c[i].entry)
			}
		}
		p.putLinks = append(p.putLinks, l)
		return
	}
	copyTo := func(to records.Side, from delta.Entry) {
		p.actions = append(p.actions, action{op: connector.OpUpdate, side: to, from: from, link: l, hasLink: true})
	}
	recreate := func(to records.Side, from delta.Entry) {
		p.actions = append(p.actions, action{op: connector.OpCreate, side: to, from: from, link: l, hasLink: true})
	}
	deleteOn := func(on records.Side) {
		if !pol.Deletes.Propagate {
			l.Sides[on.Other()].Gone = true
			l.Sides[on.Other()].Hash = ""
			p.putLinks = append(p.putLinks, l)
			return
		}
		p.actions = append(p.actions, action{op: connector.OpDelete, side: on, link: l, hasLink: true, deleteKey: l.Sides[on.Other()].Key})
	}
	// sameContent: the two sides now hold the same data (both changed
	// alike, or our own write read back after a crash).
	sameContent := func(a, b delta.Entry, aSide records.Side) bool {
		return delta.Hash(translate(a.Values(), p.sides[aSide], p.sides[aSide.Other()]), p.sides[aSide.Other()].fields) == b.Hash
	}

	switch {
	case c[0].deleted && c[1].deleted:
		p.dropKeys = append(p.dropKeys, key0)
	case c[0].changed && c[1].changed:
		if sameContent(c[0].entry, c[1].entry, 0) {
			l.Sides[0], l.Sides[1] = stateOf(c[0].entry), stateOf(c[1].entry)
			p.putLinks = append(p.putLinks, l)
			return
		}
		if pol.Direction == OneWay {
			copyTo(tgtI, c[srcI].entry)
			return
		}
		winner, ok := r.settleConflict(p, c[srcI].entry, c[tgtI].entry, srcI)
		if ok {
			copyTo(winner.Other(), c[winner].entry)
		}
	case pol.Direction == OneWay:
		switch {
		case c[srcI].changed:
			if c[tgtI].deleted {
				recreate(tgtI, c[srcI].entry)
			} else {
				copyTo(tgtI, c[srcI].entry)
			}
		case c[srcI].deleted:
			deleteOn(tgtI)
		default: // the target drifted: restore the source's content
			from, known := p.obs[srcI].unchanged[key0]
			switch {
			case !known: // not read (incremental): corrected when the source changes
			case c[tgtI].deleted:
				recreate(tgtI, from)
			default:
				copyTo(tgtI, from)
			}
		}
	default: // two-way, at most one side changed or deleted
		for i := range records.Side(2) {
			o := i.Other()
			switch {
			case c[i].changed && c[o].deleted:
				recreate(o, c[i].entry) // an edit beats a delete: nothing is lost
			case c[i].changed:
				copyTo(o, c[i].entry)
			case c[i].deleted && !c[o].changed:
				deleteOn(o)
			}
		}
	}
}

// settleConflict applies the policy's conflict rule and returns the winning
// side, or false for Manual.
func (r *runner) settleConflict(p *entityPlan, srcEntry, tgtEntry delta.Entry, srcI records.Side) (records.Side, bool) {
	tgtI := srcI.Other()
	switch r.cycle.Policy.Conflict {
	case SourceWins:
		return srcI, true
	case TargetWins:
		return tgtI, true
	case NewestWins:
		if tgtEntry.ModTime.After(srcEntry.ModTime) {
			return tgtI, true
		}
		return srcI, true
	}
	src := p.sides[srcI]
	id := pendingID(records.Conflict, srcI, srcEntry.Key)
	p.seenPending[id] = true
	pe, ok := p.pending[id]
	if !ok {
		pe = records.Pending{Pair: p.pair, Kind: records.Conflict, Side: srcI, Key: srcEntry.Key, ID: srcEntry.ID, FirstSeen: r.now}
	}
	pe.LastSeen, pe.CycleID = r.now, r.cycle.ID
	pe.Reason = fmt.Sprintf("changed on both %s (%s) and %s (%s) since the last sync", src.endpoint, srcEntry.ID, p.sides[tgtI].endpoint, tgtEntry.ID)
	p.newPending = append(p.newPending, pe)
	p.counts.Conflicts++
	p.counts.Skipped++
	p.reports = append(p.reports, ItemReport{Endpoint: src.endpoint, Key: srcEntry.Key, ID: srcEntry.ID,
		OtherEndpoint: p.sides[tgtI].endpoint, OtherKey: tgtEntry.Key, OtherID: tgtEntry.ID, Kind: ReportConflict, Reason: pe.Reason})
	return 0, false
}

// pairInserts links new items that are the same item on both sides (by the
// origin we stored, or by matchOn), quarantines ambiguous matches, and
// creates the rest on the other side.
func (r *runner) pairInserts(p *entityPlan) error {
	pol := r.cycle.Policy
	paired := [2]map[string]bool{{}, {}}
	link := func(from, to records.Side, a, b delta.Entry, writer records.Side) {
		paired[from][a.Key], paired[to][b.Key] = true, true
		var l records.Link
		l.Sides[from], l.Sides[to] = stateOf(a), stateOf(b)
		l.SyncedAt = r.now
		aOnB := delta.Hash(translate(a.Values(), p.sides[from], p.sides[to]), p.sides[to].fields)
		if aOnB == b.Hash {
			p.putLinks = append(p.putLinks, l)
			return
		}
		// Linked, but the contents differ: settle as a conflict would.
		winner := writer
		entries := map[records.Side]delta.Entry{from: a, to: b}
		if pol.Direction == TwoWay && writer == -1 {
			srcI := p.sides[0].index
			if !p.sides[0].isSource {
				srcI = 1
			}
			w, ok := r.settleConflict(p, entries[srcI], entries[srcI.Other()], srcI)
			if !ok {
				// Manual: remember the link with neither side in sync so the
				// conflict is looked at again every cycle.
				l.Sides[0].Hash, l.Sides[1].Hash = "", ""
				p.putLinks = append(p.putLinks, l)
				return
			}
			winner = w
		} else if writer == -1 {
			winner = p.sides[0].index
			if !p.sides[0].isSource {
				winner = 1
			}
		}
		p.actions = append(p.actions, action{op: connector.OpUpdate, side: winner.Other(), from: entries[winner], link: l, hasLink: true})
	}

	// Origins: our own creates whose records were lost to a crash. Only the new items those
	// name are looked up, so a first cycle's million new items are not held.
	for to := range records.Side(2) {
		from := to.Other()
		var candidates []originItem
		wanted := map[string]bool{}
		for o, err := range withOrigin(p.obs[to].inserts, p.pair, from) {
			if err != nil {
				return err
			}
			candidates = append(candidates, o)
			wanted[o.sourceKey] = true
		}
		byKey, err := entriesByKey(p.obs[from].inserts, wanted)
		if err != nil {
			return err
		}
		for _, o := range candidates {
			b := o.entry
			if paired[to][b.Key] {
				continue
			}
			if a, ok := byKey[o.sourceKey]; ok && !paired[from][a.Key] {
				link(from, to, a, b, from)
			}
		}
	}

	// matchOn: items that already existed on both sides.
	src, tgt := p.sides[0], p.sides[1]
	if !src.isSource {
		src, tgt = tgt, src
	}
	if len(src.matchOn) > 0 {
		groups := map[string][2][]delta.Entry{}
		for _, s := range []*side{src, tgt} {
			for e, err := range p.obs[s.index].inserts.all() {
				if err != nil {
					return err
				}
				if paired[s.index][e.Key] {
					continue
				}
				mk, ok := delta.EncodeKey(e.Values(), s.matchOn)
				if !ok {
					continue
				}
				g := groups[mk]
				g[s.index] = append(g[s.index], e)
				groups[mk] = g
			}
		}
		for _, mk := range sortedKeys(groups) {
			g := groups[mk]
			a, b := g[src.index], g[tgt.index]
			switch {
			case len(a) == 1 && len(b) == 1:
				link(src.index, tgt.index, a[0], b[0], -1)
			case len(a) >= 1 && len(b) >= 1:
				for _, s := range []*side{src, tgt} {
					for _, e := range g[s.index] {
						paired[s.index][e.Key] = true
						r.quarantine(p, s, e, fmt.Sprintf("matches %d item(s) on %s and %d on %s", len(a), src.endpoint, len(b), tgt.endpoint))
					}
				}
			}
		}
	}

	// Everything else is new: create it on the other side (see createsOn).
	for _, s := range []*side{src, tgt} {
		if pol.Direction == OneWay && s == tgt {
			break // items only on the target were never ours to sync
		}
		p.creates[s.index.Other()] = creates{from: p.obs[s.index].inserts, paired: paired[s.index]}
	}
	return nil
}

func (r *runner) quarantine(p *entityPlan, s *side, e delta.Entry, reason string) {
	id := pendingID(records.Quarantined, s.index, e.Key)
	p.seenPending[id] = true
	pe, ok := p.pending[id]
	if !ok {
		pe = records.Pending{Pair: p.pair, Kind: records.Quarantined, Side: s.index, Key: e.Key, ID: e.ID, FirstSeen: r.now}
	}
	pe.LastSeen, pe.CycleID, pe.Reason = r.now, r.cycle.ID, reason
	p.newPending = append(p.newPending, pe)
	p.counts.Quarantined++
	p.counts.Skipped++
	p.report(s, ReportQuarantined, e.Key, e.ID, reason)
}

// relinkRecreated settles a re-create (an edit beating a delete, a one-way
// restore) whose record was lost to a crash: the new item carries the origin
// of an item that is still linked, to the item deleted on the same side. It
// takes that item's place in the link instead of being copied back as new.
func (r *runner) relinkRecreated(p *entityPlan, links map[string]records.Link, keys map[string]bool) error {
	for to := range records.Side(2) {
		from := to.Other()
		var candidates []originItem
		wanted := map[string]bool{}
		for o, err := range withOrigin(p.obs[to].inserts, p.pair, from) {
			if err != nil {
				return err
			}
			candidates = append(candidates, o)
			wanted[o.sourceKey] = true
		}
		newOnFrom, err := entriesByKey(p.obs[from].inserts, wanted)
		if err != nil {
			return err
		}
		for _, o := range candidates {
			b, key := o.entry, o.sourceKey
			if _, ok := newOnFrom[key]; ok {
				continue
			}
			var l records.Link
			var found bool
			err := r.view(func(tx *records.Tx) (err error) {
				l, found, err = tx.Link(p.pair, from, key)
				return err
			})
			if err != nil {
				return err
			}
			oldKey0 := l.Sides[0].Key
			if !found || !p.obs[to].deleted[oldKey0] {
				continue
			}
			p.obs[to].inserts.remove(b.Key)
			delete(p.obs[to].deleted, oldKey0)
			l.Sides[to] = stateOf(b)
			newKey0 := l.Sides[0].Key
			if newKey0 != oldKey0 {
				p.dropKeys = append(p.dropKeys, oldKey0)
				delete(links, oldKey0)
				delete(keys, oldKey0)
				o := p.obs[from]
				if e, ok := o.changed[oldKey0]; ok {
					delete(o.changed, oldKey0)
					o.changed[newKey0] = e
				}
			}
			delete(p.obs[from].unchanged, oldKey0)
			links[newKey0] = l
			keys[newKey0] = true
			p.putLinks = append(p.putLinks, l)
		}
	}
	return nil
}
