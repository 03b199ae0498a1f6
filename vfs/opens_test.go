package vfs

import (
	"sync"
	"testing"
	"time"
)

var (
	gen1 = Pin{Gen: 1, Size: 10}
	gen2 = Pin{Gen: 2, Size: 20}
)

// isClosed reports whether ch is closed (without waiting).
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestPassthroughJoins: the first reader of a cached generation reserves passthrough; a reader
// that comes while it is settling, and after, joins it on its generation, even when the node
// has learnt of a newer one.
func TestPassthroughJoins(t *testing.T) {
	var o Opens
	a := o.Join(gen1, true, true)
	if a.Wait != nil || a.Handle.Mode() != Passthrough || a.Pin != gen1 {
		t.Fatalf("first reader: %+v", a)
	}
	b := o.Join(gen1, true, true) // joins the reservation under way
	if b.Handle.Mode() != Passthrough || b.Pin != gen1 {
		t.Fatalf("second reader: %+v", b)
	}
	o.Settle(a.Handle, true)
	o.Settle(b.Handle, true)
	c := o.Join(gen2, false, true) // the node learnt of gen2; no waiting: joins gen1
	if c.Handle.Mode() != Passthrough || c.Pin != gen1 {
		t.Fatalf("reader after a new generation: %+v, want passthrough on gen1", c)
	}
	o.Settle(c.Handle, true)
	for _, h := range []*Handle{a.Handle, b.Handle, c.Handle} {
		o.Release(h)
	}
	d := o.Join(gen2, true, true)
	if d.Handle.Mode() != Passthrough || d.Pin != gen2 {
		t.Fatalf("reader once all are released: %+v, want passthrough on gen2", d)
	}
}

// TestPassthroughNotBesideCached: no passthrough beside a page-cached (or writing) handle, and
// no passthrough of an empty or never uploaded file.
func TestPassthroughNotBesideCached(t *testing.T) {
	var o Opens
	w := o.OpenCached(true)
	if s := o.Join(gen1, true, true); s.Wait != nil || s.Handle.Mode() != Cached {
		t.Fatalf("reader beside an open writer: %+v, want cached now (the writer was not flushed)", s)
	}
	if o.Writers() != 1 {
		t.Fatalf("writers %d", o.Writers())
	}
	o.Release(w)
	var e Opens
	for _, p := range []Pin{{Gen: 1}, {Size: 5}} {
		if s := e.Join(p, true, true); s.Handle.Mode() != Cached {
			t.Errorf("Join(%+v) = %+v, want cached", p, s)
		}
	}
	var n Opens
	if s := n.Join(gen1, true, false); s.Handle.Mode() != Cached {
		t.Errorf("passthrough not allowed: %+v", s)
	}
}

// TestJoinWaitsForFlushedReleases: a reader waits (on a channel, closed by the release) for
// the releases of handles already flushed, and only for those.
func TestJoinWaitsForFlushedReleases(t *testing.T) {
	var o Opens
	c := o.OpenCached(false)
	o.Flush(c)
	o.Flush(c) // idempotent (dup'ed descriptors)
	s := o.Join(gen1, true, true)
	if s.Wait == nil {
		t.Fatalf("reader beside a flushed cached handle: %+v, want Wait", s)
	}
	if isClosed(s.Wait) {
		t.Fatal("Wait closed before the release")
	}
	o.Release(c)
	if !isClosed(s.Wait) {
		t.Fatal("Wait not closed by the release")
	}
	if s := o.Join(gen1, true, true); s.Handle.Mode() != Passthrough {
		t.Fatalf("after the release: %+v", s)
	}

	// Passthrough handles of an old generation, all flushed: wait for them too; once the
	// caller may wait no more, join them on their generation.
	var p Opens
	old := p.Join(gen1, true, true)
	p.Settle(old.Handle, true)
	p.Flush(old.Handle)
	if s := p.Join(gen2, true, true); s.Wait == nil {
		t.Fatalf("new generation beside flushed old passthrough: %+v, want Wait", s)
	}
	if s := p.Join(gen2, false, true); s.Handle.Mode() != Passthrough || s.Pin != gen1 {
		t.Fatalf("no more waiting: %+v, want passthrough on gen1", s)
	}
}

// TestSettleFailure: a reservation whose data file could not be opened becomes a page-cached
// reader when it was alone, and otherwise waits for the other reservation to settle.
func TestSettleFailure(t *testing.T) {
	var o Opens
	a := o.Join(gen1, true, true)
	if cached, retry := o.Settle(a.Handle, false); !cached || retry != nil || a.Handle.Mode() != Cached {
		t.Fatalf("lone failed reservation: cached %v, retry %v, mode %v", cached, retry, a.Handle.Mode())
	}
	o.Release(a.Handle)

	x := o.Join(gen1, true, true)
	y := o.Join(gen1, true, true)
	cached, retry := o.Settle(y.Handle, false) // x is still settling
	if cached || retry == nil || isClosed(retry) {
		t.Fatalf("failed beside a reservation under way: cached %v, retry %v", cached, retry)
	}
	o.Settle(x.Handle, true)
	if !isClosed(retry) {
		t.Fatal("retry not closed when the other reservation settled")
	}
	z := o.Join(gen1, true, true)
	if z.Handle.Mode() != Passthrough {
		t.Fatalf("retry: %+v", z)
	}
}

// TestHoldAndRelease: holds count as writers; Release reports what is left and is idempotent.
func TestHoldAndRelease(t *testing.T) {
	var o Opens
	w := o.OpenCached(true)
	o.Hold()
	if n := o.Unhold(); n != 1 {
		t.Fatalf("writers after Unhold: %d", n)
	}
	if h, w := o.Release(w); h != 0 || w != 0 {
		t.Fatalf("after release: %d handles, %d writers", h, w)
	}
	if h, _ := o.Release(w); h != 0 {
		t.Fatalf("second release: %d handles", h)
	}
}

// TestOpensConcurrent: readers and releases from many goroutines (under -race): every waiter
// is woken, nobody polls, and the counts return to zero.
func TestOpensConcurrent(t *testing.T) {
	var o Opens
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(time.Second)
			for {
				s := o.Join(gen1, time.Now().Before(deadline), true)
				if s.Wait != nil {
					select {
					case <-s.Wait:
					case <-time.After(time.Until(deadline)):
					}
					continue
				}
				if s.Handle.Mode() == Passthrough {
					o.Settle(s.Handle, i%3 != 0)
				}
				o.Flush(s.Handle)
				o.Release(s.Handle)
				return
			}
		}()
	}
	wg.Wait()
	if h, w := o.Release(&Handle{state: released}); h != 0 || w != 0 {
		t.Fatalf("left: %d handles, %d writers", h, w)
	}
}
