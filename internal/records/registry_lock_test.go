package records

import (
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestRegistryTurnsAreSharedByReadersAndAWriterWaitsForThem(t *testing.T) {
	path := filepath.Join(t.TempDir(), registryLockFile)
	read1, err := takeTurn(path, false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	read2, err := takeTurn(path, false, time.Second)
	if err != nil {
		t.Fatalf("a second reader waits for the first: %v", err)
	}
	if _, err := takeTurn(path, true, 100*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("a writer while two read: got %v, want ErrLocked after the timeout", err)
	}
	read1()
	got := make(chan time.Time, 1)
	go func() {
		unlock, err := takeTurn(path, true, 5*time.Second)
		if err != nil {
			t.Error(err)
			close(got)
			return
		}
		got <- time.Now()
		unlock()
	}()
	time.Sleep(200 * time.Millisecond)
	released := time.Now()
	read2()
	at, ok := <-got
	if !ok {
		return
	}
	if at.Before(released) {
		t.Fatal("the writer went while a reader held its turn")
	}
}
