// Command benchstore measures the record store under the load of many cycle processes at once,
// as on a ReadWriteMany volume shared by Jobs on several nodes: N processes, each claiming
// targets for its users in the shared claims registry the way a cycle does (one claim per user
// per cycle), report how long each claim waited for the registry's lock. Point -dir at the
// volume to judge (an NFS or CephFS mount, say); by default it is a directory on local disk.
//
// Run it with `make bench-store` (PROCS=64).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/chainsync/chainsync/internal/records"
)

func main() {
	procs := flag.Int("procs", 64, "cycle processes at once")
	claims := flag.Int("claims", 100, "claims each process makes (users it cycles)")
	dir := flag.String("dir", "", "the store's directory (default: a new one under the system's temporary directory)")
	child := flag.Int("child", -1, "run as process N of the measurement (internal)")
	flag.Parse()
	if *child >= 0 {
		if err := claimAll(*dir, *child, *claims); err != nil {
			fmt.Fprintln(os.Stderr, "bench-store:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*procs, *claims, *dir); err != nil {
		fmt.Fprintln(os.Stderr, "bench-store:", err)
		os.Exit(1)
	}
}

// claimAll claims one target for each of its users, printing each claim's duration (in
// microseconds) as a JSON list on stdout.
func claimAll(dir string, proc, claims int) error {
	store, err := records.Open(dir)
	if err != nil {
		return err
	}
	// Two passes: the users' first cycles, which make their claims, then their later cycles,
	// which find them made.
	took := make([]int64, 0, 2*claims)
	for i := range 2 * claims {
		user := fmt.Sprintf("user-%03d-%05d@example.com", proc, i%claims)
		start := time.Now()
		if err := store.ClaimTarget(user, "sqlite:directory.db/people", "onboarding-directory", time.Now()); err != nil {
			return err
		}
		took = append(took, time.Since(start).Microseconds())
	}
	return json.NewEncoder(os.Stdout).Encode(took)
}

func run(procs, claims int, dir string) error {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "chainsync-bench-store-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = filepath.Join(tmp, "store")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var first, later []int64
	errs := make(chan error, procs)
	var wg sync.WaitGroup
	start := time.Now()
	for p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(self, "-child", strconv.Itoa(p), "-claims", strconv.Itoa(claims), "-dir", dir)
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				errs <- fmt.Errorf("process %d: %w", p, err)
				return
			}
			var took []int64
			if err := json.Unmarshal(out, &took); err != nil {
				errs <- fmt.Errorf("process %d: %w", p, err)
				return
			}
			mu.Lock()
			first = append(first, took[:len(took)/2]...)
			later = append(later, took[len(took)/2:]...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("%d processes x %d users, each claimed by a first and a later cycle, on one claims registry in %s (%s)\n",
		procs, claims, dir, elapsed.Round(time.Millisecond))
	fmt.Printf("Claims per second:  %.0f\n", float64(len(first)+len(later))/elapsed.Seconds())
	worst := time.Duration(0)
	for _, pass := range []struct {
		name string
		took []int64
	}{{"first cycles (new claims)", first}, {"later cycles (claims held)", later}} {
		slices.Sort(pass.took)
		at := func(q float64) time.Duration {
			return time.Duration(pass.took[min(len(pass.took)-1, int(q*float64(len(pass.took))))]) * time.Microsecond
		}
		fmt.Printf("Claim wait, %-27s p50 %-10s p99 %-10s max %s\n", pass.name+":", at(0.5), at(0.99), at(1))
		worst = max(worst, at(1))
	}
	// A claim that waits past the registry's 30 s lock timeout fails its user's cycle.
	fmt.Printf("GOAL claim-wait-max-s measured=%.2f target<=30\n", worst.Seconds())
	return nil
}
