package ldap

import (
	"context"
	"encoding/base64"
	"fmt"
	"iter"
	"slices"
	"strings"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/chainsync/chainsync/internal/connector"
)

// Deletions without a full read come from the directory's content
// synchronisation (RFC 4533), where the server offers it (OpenLDAP's
// syncprov overlay; with a session log it names deleted entries by their
// entryUUID, which is why only collections keyed by entryUUID use it).
//
// A watermark then carries a sync cookie besides the newest modification
// time. The cookie is taken by a refresh of the user's search restricted to
// no entry: a cookie names a state of the whole database (OpenLDAP keeps no
// state per search), so it serves the user's search later, and taking it
// transfers nothing, where a refresh without a cookie would send every
// entry, unpaged, into the directory's size limit. A change read presents
// the cookie and gets the entries changed since, and the entryUUIDs of
// those deleted since: other users' deletions too, which the engine ignores
// as it holds no such item. When the server cannot answer from the cookie
// (its session log no longer reaches back, or the account's size limit cuts
// the refresh short: a refresh cannot be paged), the read goes on by
// modification time, and deletions it did not see wait for a Complete
// cycle, as they would without the overlay.

// noEntry is an entryUUID no entry has, to restrict a search to none.
const noEntry = "00000000-0000-0000-0000-000000000000"

// cookieSeparator parts a watermark's time from its cookie.
const cookieSeparator = "|"

// offersContentSync reads the root DSE's supported controls.
func (c *Connector) offersContentSync() (bool, error) {
	res, err := c.conn.Search(goldap.NewSearchRequest("", goldap.ScopeBaseObject, goldap.NeverDerefAliases, 1, 0, false,
		"(objectClass=*)", []string{"supportedControl"}, nil))
	if err != nil {
		if goldap.IsErrorWithCode(err, goldap.ErrorNetwork) {
			return false, c.endpointError("reading the root DSE", err)
		}
		return false, nil // a root DSE we may not read offers nothing we can use
	}
	return len(res.Entries) == 1 && slices.Contains(res.Entries[0].GetAttributeValues("supportedControl"), goldap.ControlTypeSyncRequest), nil
}

func (c *Connector) syncs(e entries) bool {
	return c.contentSync && strings.EqualFold(e.key, DefaultKey)
}

// syncCookie is the cookie of the database's state now.
func (c *Connector) syncCookie(ctx context.Context, e entries, s connector.Scope) ([]byte, error) {
	filter, err := e.filter(s, "(entryUUID="+noEntry+")")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp := c.conn.Syncrepl(ctx, goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
		filter, []string{"1.1"}, nil), 1, goldap.SyncRequestModeRefreshOnly, nil, false)
	var cookie []byte
	for resp.Next() {
		if done, ok := goldap.FindControl(resp.Controls(), goldap.ControlTypeSyncDone).(*goldap.ControlSyncDone); ok {
			cookie = done.Cookie
		}
	}
	if err := resp.Err(); err != nil {
		return nil, c.endpointError("taking a sync cookie", err)
	}
	return cookie, nil
}

func encodeWatermark(time string, cookie []byte) connector.Watermark {
	if cookie == nil {
		return connector.Watermark(time)
	}
	return connector.Watermark(time + cookieSeparator + base64.StdEncoding.EncodeToString(cookie))
}

func decodeWatermark(w connector.Watermark) (time string, cookie []byte, err error) {
	time, encoded, ok := strings.Cut(string(w), cookieSeparator)
	if ok {
		if cookie, err = base64.StdEncoding.DecodeString(encoded); err != nil || len(cookie) == 0 {
			return "", nil, fmt.Errorf("watermark %q was not made by the ldap connector", w)
		}
	}
	return time, cookie, nil
}

// syncChanges streams what changed since the cookie, deletions as
// tombstones. When the server cannot answer from the cookie, byTime (the
// read by modification time) takes over, skipping the entries already read,
// so that none is read twice.
func (c *Connector) syncChanges(ctx context.Context, req connector.ReadRequest, e entries, cookie []byte,
	byTime iter.Seq2[connector.Item, error]) iter.Seq2[connector.Item, error] {
	return func(yield func(connector.Item, error) bool) {
		filter, err := e.filter(req.Scope)
		if err != nil {
			yield(connector.Item{}, err)
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		resp := c.conn.Syncrepl(ctx, goldap.NewSearchRequest(c.cfg.BaseDN, goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, 0, 0, false,
			filter, e.attributes(req.Fields), nil), 64, goldap.SyncRequestModeRefreshOnly, cookie, false)
		read := map[string]bool{}
		for resp.Next() {
			for _, change := range changesIn(resp) {
				item, err := change, error(nil)
				if !change.Deleted {
					if item, err = e.item(resp.Entry(), req.Fields); err != nil {
						err = connector.NewItemError(item.ID, err)
					}
				}
				read[item.ID] = true
				if !yield(item, err) {
					return
				}
			}
		}
		err = resp.Err()
		if err == nil {
			return
		}
		if goldap.IsErrorWithCode(err, goldap.ErrorNetwork) {
			yield(connector.Item{}, c.endpointError("reading changes under "+c.cfg.BaseDN, err))
			return
		}
		for item, err := range byTime {
			if err == nil && read[item.ID] {
				continue
			}
			if !yield(item, err) {
				return
			}
		}
	}
}

// changesIn lists what one message of a sync refresh says changed: an
// entry added or modified (an Item without fields, to be read from the
// entry), or entries deleted (tombstones). Entries the server reports as
// merely present are no change.
func changesIn(resp goldap.Response) []connector.Item {
	var out []connector.Item
	for _, ctrl := range resp.Controls() {
		switch ctrl := ctrl.(type) {
		case *goldap.ControlSyncState:
			switch ctrl.State {
			case goldap.SyncStateAdd, goldap.SyncStateModify:
				out = append(out, connector.Item{ID: ctrl.EntryUUID.String()})
			case goldap.SyncStateDelete:
				out = append(out, connector.Item{ID: ctrl.EntryUUID.String(), Deleted: true})
			}
		case *goldap.ControlSyncInfo:
			if ids := ctrl.SyncIdSet; ids != nil && ids.RefreshDeletes {
				for _, id := range ids.SyncUUIDs {
					out = append(out, connector.Item{ID: id.String(), Deleted: true})
				}
			}
		}
	}
	return out
}
