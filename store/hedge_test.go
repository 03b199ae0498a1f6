package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// stallBucket is a Bucket whose Stat, List and reads stall (until their context ends) on the
// attempts that stall says, and answer otherwise.
type stallBucket struct {
	Bucket
	stall   func(attempt int) bool
	release chan struct{} // closed: stalled calls answer
	calls   atomic.Int32
	data    []byte
	// readStallAt, when > 0, makes a read opened at offset < readStallAt stall after
	// delivering the bytes up to readStallAt.
	readStallAt int64
	// stallLater makes reads opened at or after readStallAt stall before their first byte.
	stallLater bool

	mu        sync.Mutex
	cancelled int // stalled attempts whose context ended
}

func (b *stallBucket) wait(ctx context.Context, attempt int) error {
	if !b.stall(attempt) {
		return nil
	}
	select {
	case <-ctx.Done():
		b.mu.Lock()
		b.cancelled++
		b.mu.Unlock()
		return ctx.Err()
	case <-b.release:
		return nil
	}
}

func (b *stallBucket) Stat(ctx context.Context, name string) (Attrs, error) {
	n := int(b.calls.Add(1))
	if err := b.wait(ctx, n); err != nil {
		return Attrs{}, err
	}
	return Attrs{Name: name, Generation: int64(n)}, nil
}

func (b *stallBucket) List(ctx context.Context, opts ListOptions) (Page, error) {
	n := int(b.calls.Add(1))
	if err := b.wait(ctx, n); err != nil {
		return Page{}, err
	}
	return Page{Prefixes: []string{opts.Prefix + "x/"}}, nil
}

func (b *stallBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	b.calls.Add(1)
	end := int64(len(b.data))
	if n >= 0 {
		end = min(end, off+n)
	}
	r := &stallReader{ctx: ctx, data: b.data[off:end]}
	switch {
	case b.readStallAt > off:
		r.stallAfter = int(b.readStallAt - off)
	case b.stallLater:
		r.stallAfter = 0
	default:
		r.stallAfter = -1
	}
	return r, nil
}

// stallReader delivers data in 10-byte pieces, stalling (until ctx ends) after stallAfter bytes.
type stallReader struct {
	ctx        context.Context
	data       []byte
	sent       int
	stallAfter int // < 0: never
}

func (r *stallReader) Read(p []byte) (int, error) {
	if r.stallAfter >= 0 && r.sent >= r.stallAfter {
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if r.sent == len(r.data) {
		return 0, io.EOF
	}
	k := min(len(p), 10, len(r.data)-r.sent)
	if r.stallAfter >= 0 {
		k = min(k, r.stallAfter-r.sent)
	}
	copy(p, r.data[r.sent:r.sent+k])
	r.sent += k
	return k, nil
}

func (r *stallReader) Close() error { return nil }

func TestHedgeDeadlineAdapts(t *testing.T) {
	h := WithHedging(nil, HedgeOptions{Floor: 100 * time.Millisecond, Ceiling: 2 * time.Second}).(*hedgeBucket)
	var l latencies
	if d := h.deadline(&l); d != 100*time.Millisecond {
		t.Fatalf("deadline before any answer %v, want the floor", d)
	}
	for range 10 {
		l.record(5 * time.Millisecond)
	}
	if d := h.deadline(&l); d != 100*time.Millisecond {
		t.Fatalf("deadline after fast answers %v, want the floor (4 × 5ms is below it)", d)
	}
	l.record(200 * time.Millisecond)
	if d := h.deadline(&l); d != 800*time.Millisecond {
		t.Fatalf("deadline after one 200ms answer %v, want 4 × 200ms", d)
	}
	l.record(time.Second)
	if d := h.deadline(&l); d != 2*time.Second {
		t.Fatalf("deadline after a 1s answer %v, want the ceiling", d)
	}
	for range latencyWindow {
		l.record(30 * time.Millisecond)
	}
	if d := h.deadline(&l); d != 120*time.Millisecond {
		t.Fatalf("deadline once the slow answers left the window %v, want 4 × 30ms", d)
	}
	d := WithHedging(nil, HedgeOptions{}).(*hedgeBucket)
	if d.opts.Floor != time.Second || d.opts.Ceiling != 10*time.Second || d.opts.Multiplier != 4 {
		t.Fatalf("defaults %+v", d.opts)
	}
}

func TestHedgeFirstAnswerWins(t *testing.T) {
	var c Counters
	fb := &stallBucket{stall: func(a int) bool { return a == 1 }, release: make(chan struct{})}
	b := WithHedging(fb, HedgeOptions{Floor: 50 * time.Millisecond, Counters: &c})
	start := time.Now()
	a, err := b.Stat(context.Background(), "x")
	took := time.Since(start)
	if err != nil || a.Generation != 2 {
		t.Fatalf("stat: %+v %v, want the second attempt's answer", a, err)
	}
	t.Logf("stat answered by the hedge after %v (deadline 50ms)", took)
	if took < 50*time.Millisecond || took > time.Second {
		t.Fatalf("stat took %v, want just over the 50ms deadline", took)
	}
	if s := c.Snapshot(); s.Hedged != 1 || s.HedgeWins != 1 || s.HedgeGaveUp != 0 {
		t.Fatalf("counters %+v", s)
	}
	// The stalled first attempt is cancelled once the hedge won.
	deadline := time.Now().Add(2 * time.Second)
	for {
		fb.mu.Lock()
		n := fb.cancelled
		fb.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the losing attempt was never cancelled")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A fast backend is not hedged.
	fb.stall = func(int) bool { return false }
	if _, err := b.List(context.Background(), ListOptions{Prefix: "p/"}); err != nil {
		t.Fatal(err)
	}
	if s := c.Snapshot(); s.Hedged != 1 {
		t.Fatalf("a fast call was hedged: %+v", s)
	}
}

func TestHedgeGivesUpAndLearnsStragglers(t *testing.T) {
	var c Counters
	fb := &stallBucket{stall: func(int) bool { return true }, release: make(chan struct{})}
	b := WithHedging(fb, HedgeOptions{Floor: 50 * time.Millisecond, Ceiling: 5 * time.Second, Counters: &c})
	h := b.(*hedgeBucket)
	start := time.Now()
	_, err := b.List(context.Background(), ListOptions{Prefix: "p/"})
	took := time.Since(start)
	t.Logf("list on a stalled backend failed after %v: %v", took, err)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("list on a stalled backend: %v, want DeadlineExceeded", err)
	}
	if took < 100*time.Millisecond || took > time.Second {
		t.Fatalf("gave up after %v, want 2 × the 50ms deadline", took)
	}
	if s := c.Snapshot(); s.Hedged != 1 || s.HedgeGaveUp != 1 || fb.calls.Load() != 2 {
		t.Fatalf("counters %+v, calls %d", s, fb.calls.Load())
	}
	// The backend was slow, not dead: the abandoned attempts answer late, and their latency
	// raises the deadline of later calls.
	time.Sleep(200 * time.Millisecond)
	close(fb.release)
	deadline := time.Now().Add(2 * time.Second)
	for h.deadline(&h.list) == 50*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatal("the late answers were not learned")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// The two attempts answer about 300 ms and 250 ms after they were sent (the second was
	// sent at the 50 ms deadline); whichever is learned first raises the deadline.
	if d := h.deadline(&h.list); d < 4*250*time.Millisecond {
		t.Fatalf("deadline after answers of about 250–300ms: %v, want at least 4 × 250ms", d)
	}
	if d := h.deadline(&h.stat); d != 50*time.Millisecond {
		t.Fatalf("stat deadline %v: List's latency must not change Stat's", d)
	}
}

func TestHedgeFailedAttemptWaitsForTheOther(t *testing.T) {
	var calls atomic.Int32
	fb := &funcBucket{stat: func(ctx context.Context) (Attrs, error) {
		switch calls.Add(1) {
		case 1:
			time.Sleep(60 * time.Millisecond) // past the deadline, then a failure
			return Attrs{}, errors.New("503 after retries")
		default: // sent at 50ms, answers at 80ms
			time.Sleep(30 * time.Millisecond)
			return Attrs{Generation: 7}, nil
		}
	}}
	b := WithHedging(fb, HedgeOptions{Floor: 50 * time.Millisecond})
	a, err := b.Stat(context.Background(), "x")
	if err != nil || a.Generation != 7 {
		t.Fatalf("stat: %+v %v, want the hedge's answer after the first attempt failed", a, err)
	}
}

func TestHedgeCallerCancel(t *testing.T) {
	fb := &stallBucket{stall: func(int) bool { return true }, release: make(chan struct{})}
	b := WithHedging(fb, HedgeOptions{Floor: time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(30*time.Millisecond, cancel)
	start := time.Now()
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, context.Canceled) {
		t.Fatalf("stat with a cancelled context: %v", err)
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Fatalf("a cancelled stat returned after %v", took)
	}
}

func TestHedgeReadResumesAfterStall(t *testing.T) {
	var c Counters
	data := bytes.Repeat([]byte("0123456789abcdef"), 100)
	fb := &stallBucket{stall: func(int) bool { return false }, data: data, readStallAt: 700}
	b := WithHedging(fb, HedgeOptions{Floor: 50 * time.Millisecond, Counters: &c})
	r, err := b.NewRangeReader(context.Background(), "obj", 5, 100, 1000)
	if err != nil {
		t.Fatal(err)
	}
	// The resumed request (at 700) must not stall again.
	fb.readStallAt = 0
	start := time.Now()
	got, err := io.ReadAll(r)
	r.Close()
	t.Logf("read resumed after a stall at byte 700: %d bytes in %v", len(got), time.Since(start))
	if err != nil || !bytes.Equal(got, data[100:1100]) {
		t.Fatalf("read: %d bytes, %v; want bytes [100,1100)", len(got), err)
	}
	if s := c.Snapshot(); s.Hedged != 1 || fb.calls.Load() != 2 {
		t.Fatalf("counters %+v, requests %d: want one resume", s, fb.calls.Load())
	}
}

func TestHedgeReadGivesUp(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 500)
	for _, tc := range []struct {
		name  string
		gen   int64
		opens int32
	}{
		{"live generation: never resumed", 0, 1},
		{"pinned generation: resumed twice, then given up", 3, 1 + maxResumes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Counters
			fb := &stallBucket{stall: func(int) bool { return false }, data: data, readStallAt: 200, stallLater: true}
			b := WithHedging(fb, HedgeOptions{Floor: 30 * time.Millisecond, Counters: &c})
			r, err := b.NewRangeReader(context.Background(), "obj", tc.gen, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if !errors.Is(err, context.DeadlineExceeded) || !bytes.Equal(got, data[:200]) {
				t.Fatalf("read of a stalled response: %d bytes, %v", len(got), err)
			}
			if n := fb.calls.Load(); n != tc.opens {
				t.Fatalf("%d requests, want %d", n, tc.opens)
			}
			if s := c.Snapshot(); s.HedgeGaveUp != 1 {
				t.Fatalf("counters %+v", s)
			}
		})
	}
}

// A consumer that is slow between Reads is not a stalled response.
func TestHedgeReadSlowConsumerIsNotAStall(t *testing.T) {
	var c Counters
	data := bytes.Repeat([]byte("y"), 40)
	fb := &stallBucket{stall: func(int) bool { return false }, data: data}
	b := WithHedging(fb, HedgeOptions{Floor: 20 * time.Millisecond, Counters: &c})
	r, err := b.NewRangeReader(context.Background(), "obj", 1, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var got []byte
	buf := make([]byte, 10)
	for {
		n, err := r.Read(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(60 * time.Millisecond)
	}
	if !bytes.Equal(got, data) || c.Snapshot().Hedged != 0 || fb.calls.Load() != 1 {
		t.Fatalf("%d bytes, counters %+v, requests %d", len(got), c.Snapshot(), fb.calls.Load())
	}
}

type funcBucket struct {
	Bucket
	stat func(context.Context) (Attrs, error)
}

func (b *funcBucket) Stat(ctx context.Context, name string) (Attrs, error) { return b.stat(ctx) }
