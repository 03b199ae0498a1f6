package vfs

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
)

// staleObserver counts StaleServed.
type staleObserver struct {
	nopObserver
	stale atomic.Int64
}

func (o *staleObserver) StaleServed() { o.stale.Add(1) }

// TestStaleWhenTheBackendDoesNotAnswer: once the TTL has passed, a lookup or stat that the
// bucket does not answer is answered from what the mount last knew (a registered file, a
// directory, or an expired lookup-cache entry), counted; a name it never knew still fails,
// and the bucket's answers (not found, permission denied) are never overridden.
func TestStaleWhenTheBackendDoesNotAnswer(t *testing.T) {
	var (
		mu  sync.Mutex
		now = time.Unix(1_000_000, 0)
	)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	obs := &staleObserver{}
	e := newCore(t, Config{TTL: time.Minute, Now: clock, Observer: obs, ReadOnly: true})
	for _, name := range []string{"p/known.bin", "p/evicted.bin", "p/dir/x", "p/gone.bin", "p/never.bin"} {
		if _, err := e.b.Put(name, []byte("data of "+name), nil); err != nil {
			t.Fatal(err)
		}
	}
	known := e.lookupFile(t, e.root, "known.bin")
	if _, _, err := e.root.Lookup(ctx, "evicted.bin"); err != nil { // cached, not registered
		t.Fatal(err)
	}
	dirInfo, dirAt, err := e.root.Lookup(ctx, "dir")
	if err != nil || dirInfo.Kind != KindDir {
		t.Fatalf("lookup dir: %+v %v", dirInfo, err)
	}
	e.root.Child("dir", dirInfo, dirAt)
	if _, _, err := e.root.Lookup(ctx, "gone.bin"); err != nil {
		t.Fatal(err)
	}
	advance(2 * time.Minute) // everything known is past the TTL

	var fault atomic.Value // error
	fault.Store(fmt.Errorf("stat: no answer within 2s: %w", errors.New("deadline")))
	e.b.SetFault(func(op memstore.Op, name string) error {
		if op == memstore.OpStat || op == memstore.OpList {
			return fault.Load().(error)
		}
		return nil
	})
	for _, name := range []string{"known.bin", "evicted.bin", "dir"} {
		info, _, err := e.root.Lookup(ctx, name)
		if err != nil {
			t.Errorf("lookup of the known name %s while the backend does not answer: %v; want what the mount knew", name, err)
		}
		if name == "dir" && info.Kind != KindDir || name != "dir" && info.Size != int64(len("data of p/"+name)) {
			t.Errorf("lookup of %s: %+v, not what the mount knew", name, info)
		}
	}
	if info, _, err := known.Attr(ctx, nil); err != nil || info.Gen != known.Generation() {
		t.Errorf("stat of a known file while the backend does not answer: %+v, %v", info, err)
	}
	if n := obs.stale.Load(); n != 4 {
		t.Errorf("stale answers counted: %d, want 4", n)
	}
	if _, _, err := e.root.Lookup(ctx, "never.bin"); err == nil {
		t.Errorf("lookup of a name the mount never knew succeeded while the backend does not answer")
	}

	// Answers stand: a name the bucket says is gone, or one it refuses, is not served stale.
	e.b.SetFault(nil)
	if err := e.b.Delete(ctx, "p/gone.bin", 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.root.Lookup(ctx, "gone.bin"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("lookup of a deleted name: %v, want ErrNotExist", err)
	}
	fault.Store(fmt.Errorf("403: %w", store.ErrPermission))
	e.b.SetFault(func(op memstore.Op, name string) error {
		if op == memstore.OpStat || op == memstore.OpList {
			return fault.Load().(error)
		}
		return nil
	})
	advance(2 * time.Minute)
	if _, _, err := e.root.Lookup(ctx, "evicted.bin"); !errors.Is(err, store.ErrPermission) {
		t.Errorf("lookup refused by the bucket: %v, want ErrPermission", err)
	}
}
