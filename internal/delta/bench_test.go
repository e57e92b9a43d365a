package delta

import (
	"fmt"
	"iter"
	"testing"

	"github.com/chainsync/chainsync/internal/connector"
)

// BenchmarkDelta1M cleanses, sorts (spilling runs of 100,000) and merges
// 1,000,000 unordered items against 1,000,000 records with 1% changed.
func BenchmarkDelta1M(b *testing.B) {
	const n = 1_000_000
	c := Cleansing{Fields: []string{"email", "name"}, SpillDir: b.TempDir()}
	key := func(i int) string { return fmt.Sprintf("id-%07d", i) }
	hashOf := func(i int, changed bool) string {
		e, _ := c.Project(itemN(i, key(i), changed))
		return e.Hash
	}
	recordedHashes := make([]string, n)
	for i := range n {
		recordedHashes[i] = hashOf(i, false)
	}
	current := func(yield func(connector.Item, error) bool) {
		for j := range n {
			i := (j * 7919) % n // unordered, as a connector would return them
			if !yield(itemN(i, key(i), i%100 == 0), nil) {
				return
			}
		}
	}
	recorded := func(yield func(Recorded, error) bool) {
		for i := range n {
			if !yield(Recorded{Key: key(i), Hash: recordedHashes[i]}, nil) {
				return
			}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		sorter, sorted, err := c.Prepare(iter.Seq2[connector.Item, error](current), func(error) {}, func(Rejected) {})
		if err != nil {
			b.Fatal(err)
		}
		updates := 0
		for ch, err := range Merge(sorted, recorded) {
			if err != nil {
				b.Fatal(err)
			}
			if ch.Kind != Unchanged {
				updates++
			}
		}
		sorter.Close()
		if updates != n/100 {
			b.Fatalf("found %d changes, want %d", updates, n/100)
		}
	}
}

func itemN(i int, id string, changed bool) connector.Item {
	name := "name"
	if changed {
		name = "renamed"
	}
	return connector.Item{ID: id, Fields: map[string]connector.Value{
		"email": connector.String(fmt.Sprintf("user%d@example.com", i)),
		"name":  connector.String(name),
		"extra": connector.Int(int64(i)),
	}}
}
