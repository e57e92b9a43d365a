package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"iter"
	"maps"
	"time"

	"github.com/chainsync/chainsync/internal/connector"
	"github.com/chainsync/chainsync/internal/delta"
	"github.com/chainsync/chainsync/internal/records"
)

// defaultBatch bounds a write batch when the connector sets no limit, so
// that intents and results are recorded in steps of reasonable size.
const defaultBatch = 500

// holdBackDeletes applies the delete threshold to the cycle as a whole:
// when the deletes not yet approved exceed it, no delete is made at all.
// MaxCount caps them outright; MaxPercent only once they are more than
// MinCount, so a small user's few deletes go through while losing a large
// share of a user's items at once still waits for a person.
func (r *runner) holdBackDeletes(plans []*entityPlan, result *Result) error {
	d := r.cycle.Policy.Deletes
	if d.MaxCount <= 0 && d.MaxPercent <= 0 {
		return nil
	}
	unapproved, total := 0, 0
	for _, p := range plans {
		err := r.view(func(tx *records.Tx) error {
			n, err := tx.CountLinks(p.pair)
			total += n
			return err
		})
		if err != nil {
			return fmt.Errorf("counting records: %w", err)
		}
		for _, a := range p.actions {
			if a.op != connector.OpDelete {
				continue
			}
			pe, ok := p.pending[pendingID(records.DeleteAwaitingApproval, a.side, a.sourceKey())]
			if !ok || d.ApprovedCycle == "" || pe.CycleID != d.ApprovedCycle {
				unapproved++
			}
		}
	}
	exceeded := d.MaxCount > 0 && unapproved > d.MaxCount ||
		d.MaxPercent > 0 && unapproved > d.MinCount && total > 0 && float64(unapproved)*100/float64(total) > d.MaxPercent
	if !exceeded {
		return nil
	}
	result.DeleteThresholdExceeded = true
	result.ApprovalCycle = r.cycle.ID
	for _, p := range plans {
		kept := p.actions[:0]
		for _, a := range p.actions {
			if a.op != connector.OpDelete {
				kept = append(kept, a)
				continue
			}
			id := pendingID(records.DeleteAwaitingApproval, a.side, a.sourceKey())
			p.seenPending[id] = true
			pe, ok := p.pending[id]
			if !ok {
				// Entries already waiting keep their cycle, so an approval
				// of the cycle the user was shown still works.
				pe = records.Pending{Pair: p.pair, Kind: records.DeleteAwaitingApproval, Side: a.side, Key: a.sourceKey(),
					ID: a.link.Sides[a.side].ID, CycleID: r.cycle.ID, FirstSeen: r.now}
			}
			if pe.CycleID != r.cycle.ID {
				result.ApprovalCycle = pe.CycleID
			}
			pe.LastSeen = r.now
			pe.Reason = fmt.Sprintf("deleted on the other side; %d deletes exceed the threshold", unapproved)
			p.newPending = append(p.newPending, pe)
			p.counts.Skipped++
			rep := p.actionReport(a, ReportDeleteAwaitingApproval, pe.Reason)
			p.reports = append(p.reports, rep)
			result.PendingDeletes = append(result.PendingDeletes, rep)
		}
		p.actions = kept
	}
	r.log.Info("Delete threshold exceeded, no delete made", "deletes", unapproved, "items", total, "approvalCycle", result.ApprovalCycle)
	return nil
}

// countPlanned fills the counts and reports of a dry run from what would be
// written; failed writes waiting for a retry or given up are reported as a
// real cycle would.
func (r *runner) countPlanned(p *entityPlan) error {
	for a, err := range p.allActions() {
		if err != nil {
			return err
		}
		if !r.dueForRetry(p, a) {
			continue
		}
		from := p.sides[a.side.Other()].endpoint
		switch {
		case a.op == connector.OpCreate && a.hasLink:
			p.counts.Created++
			p.reports = append(p.reports, p.actionReport(a, ReportWouldCreate, "missing here; re-created from "+from))
		case a.op == connector.OpCreate:
			p.counts.Created++
			p.reports = append(p.reports, p.actionReport(a, ReportWouldCreate, "new on "+from))
		case a.op == connector.OpUpdate:
			p.counts.Updated++
			p.reports = append(p.reports, p.actionReport(a, ReportWouldUpdate, "content copied from "+from))
		case a.op == connector.OpDelete:
			p.counts.Deleted++
			p.reports = append(p.reports, p.actionReport(a, ReportWouldDelete, "deleted on "+from))
		}
	}
	return nil
}

// allActions yields the plan's actions, creates included.
func (p *entityPlan) allActions() iter.Seq2[action, error] {
	return func(yield func(action, error) bool) {
		for _, a := range p.actions {
			if !yield(a, nil) {
				return
			}
		}
		for _, w := range []records.Side{0, 1} {
			for a, err := range p.createsOn(w) {
				if !yield(a, err) || err != nil {
					return
				}
			}
		}
	}
}

// apply makes the plan's writes, recording an intent before each batch and
// the outcome after it, then stores the pair's state.
func (r *runner) apply(ctx context.Context, p *entityPlan) error {
	if p.reset {
		if err := r.update(func(tx *records.Tx) error { return tx.ResetPair(p.pair) }); err != nil {
			return fmt.Errorf("forgetting records for reinit: %w", err)
		}
	}
	err := r.update(func(tx *records.Tx) error {
		for _, k := range p.dropKeys {
			if err := tx.DeleteLink(p.pair, 0, k); err != nil {
				return err
			}
		}
		for _, l := range p.putLinks {
			if l.SyncedAt.IsZero() {
				l.SyncedAt = r.now
			}
			if err := tx.PutLink(p.pair, l); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording links: %w", err)
	}

	for _, w := range []records.Side{0, 1} {
		size := p.sides[w].caps.MaxBatch
		if size <= 0 {
			size = defaultBatch
		}
		// Creates are read from the plan's spool as they are written, a batch at a time.
		batch := make([]action, 0, min(size, len(p.actions)+p.creates[w].from.len()))
		due := func(a action) error {
			if !r.dueForRetry(p, a) {
				return nil
			}
			batch = append(batch, a)
			if len(batch) < size {
				return nil
			}
			err := r.writeBatch(ctx, p, w, batch)
			batch = batch[:0]
			return err
		}
		for _, a := range p.actions {
			if a.side == w {
				if err := due(a); err != nil {
					return err
				}
			}
		}
		for a, err := range p.createsOn(w) {
			if err != nil {
				return fmt.Errorf("reading the items to create: %w", err)
			}
			if err := due(a); err != nil {
				return err
			}
		}
		if len(batch) > 0 {
			if err := r.writeBatch(ctx, p, w, batch); err != nil {
				return err
			}
		}
	}

	// The cycle re-derived everything from both sides, so earlier intents
	// are settled; pending entries not seen again are resolved.
	return r.update(func(tx *records.Tx) error {
		for _, i := range p.openIntents {
			if err := tx.DeleteIntent(p.pair, i); err != nil {
				return err
			}
		}
		for id, pe := range p.pending {
			if !p.seenPending[id] {
				if err := tx.DeletePending(p.pair, pe.Kind, pe.Side, pe.Key); err != nil {
					return err
				}
			}
		}
		for _, pe := range p.newPending {
			if err := tx.PutPending(pe); err != nil {
				return err
			}
		}
		st := p.state
		st.Initialized = true
		st.MappingFingerprint = p.entity.fingerprint()
		for i, o := range p.obs {
			if o.read && o.watermark != "" {
				st.Watermarks[i] = o.watermark
			}
		}
		st.LastCycleID, st.LastSynced = r.cycle.ID, r.now
		return tx.PutState(p.pair, st)
	})
}

// dueForRetry says whether an item that failed before should be tried now;
// items waiting for their backoff are skipped, given-up ones reported.
func (r *runner) dueForRetry(p *entityPlan, a action) bool {
	id := pendingID(records.Failing, a.side, a.sourceKey())
	pe, ok := p.pending[id]
	if !ok {
		return true
	}
	if a.op != connector.OpDelete && pe.Hash != a.from.Hash {
		return true // new content: a fresh start
	}
	p.seenPending[id] = true
	report := func(kind, reason string) {
		rep := p.actionReport(a, kind, reason)
		rep.ID = cmp.Or(pe.ID, rep.ID)
		p.reports = append(p.reports, rep)
	}
	switch {
	case pe.GivenUp && !r.cycle.Policy.RetryGivenUp:
		p.counts.Errors++
		report(ReportGivenUp, fmt.Sprintf("given up after %d attempts: %s", pe.Attempts, pe.Reason))
		return false
	case r.now.Before(pe.NextRetry):
		p.counts.Skipped++
		report(ReportSkipped, fmt.Sprintf("retrying after %s: %s", pe.NextRetry.Format(time.RFC3339), pe.Reason))
		return false
	}
	return true
}

func (r *runner) writeBatch(ctx context.Context, p *entityPlan, w records.Side, batch []action) error {
	to, from := p.sides[w], p.sides[w.Other()]
	writes := make([]connector.Write, len(batch))
	intents := make([]records.Intent, len(batch))
	written := make([]map[string]connector.Value, len(batch))
	for i, a := range batch {
		wr := connector.Write{Op: a.op}
		if a.op != connector.OpDelete {
			written[i] = translate(a.from.Values(), from, to)
			wr.Fields = maps.Clone(written[i])
			wr.Origin = originToken(p.pair, w.Other(), a.from.Key)
		}
		if a.op != connector.OpCreate {
			wr.ID = a.link.Sides[w].ID
		}
		writes[i] = wr
		intents[i] = records.Intent{Op: records.Op(a.op.String()), Side: w, SourceKey: a.sourceKey(), Origin: wr.Origin, CycleID: r.cycle.ID, At: r.now}
	}
	err := r.update(func(tx *records.Tx) error {
		for _, in := range intents {
			if err := tx.PutIntent(p.pair, in); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording intents: %w", err)
	}
	results, writeErr := to.conn.Write(ctx, connector.WriteRequest{Scope: r.cycle.Scope, Entity: to.entity, Writes: writes})
	if len(results) > len(batch) {
		results = results[:len(batch)]
	}
	err = r.update(func(tx *records.Tx) error {
		for i, res := range results {
			if err := r.recordOutcome(tx, p, batch[i], written[i], res, intents[i]); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recording writes to %s: %w", to.endpoint, err)
	}
	if writeErr != nil {
		// Writes without a result stay as open intents, settled next cycle.
		return fmt.Errorf("%w: writing to %s/%s: %w", ErrEndpoint, to.endpoint, to.entity, writeErr)
	}
	if len(results) < len(batch) {
		return fmt.Errorf("%w: %s/%s returned %d results for %d writes", ErrEndpoint, to.endpoint, to.entity, len(results), len(batch))
	}
	return nil
}

func (r *runner) recordOutcome(tx *records.Tx, p *entityPlan, a action, written map[string]connector.Value, res connector.WriteResult, in records.Intent) error {
	w := a.side
	to := p.sides[w]
	failID := pendingID(records.Failing, w, a.sourceKey())
	if res.Err != nil && !(a.op == connector.OpDelete && errors.Is(res.Err, connector.ErrNotFound)) {
		pe, ok := p.pending[failID]
		if !ok || (a.op != connector.OpDelete && pe.Hash != a.from.Hash) {
			pe = records.Pending{Pair: p.pair, Kind: records.Failing, Side: w, Key: a.sourceKey(), FirstSeen: r.now}
		}
		pe.Attempts++
		pe.ID, pe.Hash, pe.LastSeen, pe.CycleID, pe.Reason = res.ID, a.from.Hash, r.now, r.cycle.ID, res.Err.Error()
		retry := r.cycle.Policy.Retry
		wait := retry.Backoff << min(pe.Attempts-1, 30)
		if wait > retry.MaxBackoff || wait <= 0 {
			wait = retry.MaxBackoff
		}
		pe.NextRetry = r.now.Add(wait)
		pe.GivenUp = retry.MaxAttempts > 0 && pe.Attempts >= retry.MaxAttempts
		p.seenPending[failID] = true
		p.pending[failID] = pe
		p.counts.Errors++
		kind, reason := ReportError, fmt.Sprintf("%s failed (attempt %d): %v", a.op, pe.Attempts, res.Err)
		if pe.GivenUp {
			kind, reason = ReportGivenUp, fmt.Sprintf("%s failed (attempt %d, the last): %v", a.op, pe.Attempts, res.Err)
		}
		rep := p.actionReport(a, kind, reason)
		rep.ID = cmp.Or(res.ID, rep.ID)
		p.reports = append(p.reports, rep)
		if err := tx.PutPending(pe); err != nil {
			return err
		}
		return tx.DeleteIntent(p.pair, in)
	}
	delete(p.seenPending, failID)
	if err := tx.DeletePending(p.pair, records.Failing, w, a.sourceKey()); err != nil {
		return err
	}
	if err := tx.DeletePending(p.pair, records.DeleteAwaitingApproval, w, a.sourceKey()); err != nil {
		return err
	}
	switch a.op {
	case connector.OpDelete:
		p.counts.Deleted++
		if err := tx.DeleteLink(p.pair, 0, a.link.Sides[0].Key); err != nil {
			return err
		}
	case connector.OpCreate, connector.OpUpdate:
		l := a.link
		// What the target stored, as it will read back, when it says so:
		// our own echo is then no change next cycle.
		stored := written
		if res.Stored != nil {
			stored = res.Stored
		}
		if a.op == connector.OpCreate {
			p.counts.Created++
			if a.hasLink {
				if err := tx.DeleteLink(p.pair, 0, l.Sides[0].Key); err != nil {
					return err
				}
			}
			key := res.ID
			if len(to.keyFields) > 0 {
				if k, ok := delta.EncodeKey(stored, to.keyFields); ok {
					key = k
				}
			}
			l.Sides[w] = records.SideState{Key: key, ID: res.ID}
		} else {
			p.counts.Updated++
		}
		l.Sides[w.Other()] = stateOf(a.from)
		l.Sides[w].Hash = to.hasher.Hash(stored)
		l.Sides[w].ModTime = res.ModTime
		l.Sides[w].Gone = false
		l.SyncedAt = r.now
		if err := tx.PutLink(p.pair, l); err != nil {
			return err
		}
	}
	return tx.DeleteIntent(p.pair, in)
}
