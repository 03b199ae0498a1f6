package store_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
	"github.com/plxfs/plxfs/store/storetest"
)

func TestBreakerConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Bucket {
		return store.WithBreaker(memstore.New("bkt"), store.BreakerOptions{})
	})
}

// breakerFixture is a memstore bucket with one object whose reads, or metadata calls, fail
// while down is set, behind WithBreaker with a short window.
type breakerFixture struct {
	mem      *memstore.Bucket
	b        store.Bucket
	counters *store.Counters
	down     atomic.Bool
}

var errDown = errors.New("503 Service Unavailable")

func newBreakerFixture(t *testing.T, ops ...memstore.Op) *breakerFixture {
	f := &breakerFixture{mem: memstore.New("bkt"), counters: &store.Counters{}}
	w, err := f.mem.NewWriter(context.Background(), "obj", store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("hello"))
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	f.mem.SetFault(func(op memstore.Op, name string) error {
		for _, o := range ops {
			if o == op && f.down.Load() {
				return errDown
			}
		}
		return nil
	})
	f.b = store.WithBreaker(f.mem, store.BreakerOptions{Window: 20 * time.Millisecond, MinFailures: 3,
		ProbeEvery: 5 * time.Millisecond, Counters: f.counters})
	return f
}

func (f *breakerFixture) read(ctx context.Context) error {
	r, err := f.b.NewRangeReader(ctx, "obj", 0, 0, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.ReadAll(r)
	return err
}

// TestBreakerOpensAndRecovers: reads that keep failing for the window open the read circuit;
// then reads fail at once with ErrUnavailable and reach the backend only as probes; metadata
// calls, which answer, are not affected; once the backend answers, a probe closes the circuit.
func TestBreakerOpensAndRecovers(t *testing.T) {
	f := newBreakerFixture(t, memstore.OpRead)
	ctx := context.Background()
	f.down.Store(true)
	for i := 0; f.counters.Snapshot().CircuitsOpen == 0; i++ {
		if i > 10_000 {
			t.Fatal("the read circuit never opened")
		}
		err := f.read(ctx)
		if err == nil {
			t.Fatal("a read succeeded while the backend fails reads")
		}
		time.Sleep(time.Millisecond)
	}
	if s := f.counters.Snapshot(); s.CircuitOpenings != 1 || s.CircuitsOpen != 1 {
		t.Fatalf("counters %+v: want one circuit opened and open", s)
	}

	before := f.mem.Requests()[memstore.OpRead]
	const n = 50
	for range n {
		if err := f.read(ctx); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("read while open: %v, want ErrUnavailable", err)
		}
	}
	if s := f.counters.Snapshot(); s.FailedFast < n {
		t.Errorf("FailedFast %d, want at least %d", s.FailedFast, n)
	}
	// Only probes reached the backend: at most one per rejected call, and far fewer in
	// practice (one per ProbeEvery).
	if got := f.mem.Requests()[memstore.OpRead] - before; got >= n {
		t.Errorf("%d reads reached the backend while the circuit was open, want fewer than %d (probes only)", got, n)
	}
	// Metadata calls have their own circuit, which is closed.
	if _, err := f.b.Stat(ctx, "obj"); err != nil {
		t.Errorf("stat while reads fail: %v", err)
	}

	f.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for f.read(ctx) != nil {
		if time.Now().After(deadline) {
			t.Fatal("reads still fail 10 s after the backend recovered")
		}
		time.Sleep(time.Millisecond)
	}
	if s := f.counters.Snapshot(); s.CircuitsOpen != 0 {
		t.Errorf("counters %+v after recovery: want no circuit open", s)
	}
}

// TestBreakerNeedsAStreak: failures interleaved with answers never open a circuit, nor do
// answers such as not-found, nor calls the caller cancelled.
func TestBreakerNeedsAStreak(t *testing.T) {
	f := newBreakerFixture(t, memstore.OpStat)
	ctx := context.Background()
	start := time.Now()
	for time.Since(start) < 100*time.Millisecond {
		f.down.Store(true)
		f.b.Stat(ctx, "obj")
		f.b.Stat(ctx, "obj")
		f.down.Store(false)
		if _, err := f.b.Stat(ctx, "missing"); !errors.Is(err, store.ErrNotExist) {
			t.Fatalf("stat of a missing name: %v", err)
		}
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		f.b.Stat(cctx, "obj")
		time.Sleep(time.Millisecond)
	}
	if s := f.counters.Snapshot(); s.CircuitOpenings != 0 {
		t.Errorf("counters %+v: a circuit opened although the backend kept answering", s)
	}
}
