package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// HedgeOptions configure WithHedging. Zero fields take the defaults below.
type HedgeOptions struct {
	// Floor is the shortest hedge deadline (default 1 s): below it a hedge would mostly
	// duplicate requests that were about to answer (a GCS metadata request's p99 is 0.1–0.3 s).
	Floor time.Duration
	// Ceiling is the longest hedge deadline (default 10 s). It also bounds the answers that
	// are learned: one that took longer is a stall, not the backend's normal pace.
	Ceiling time.Duration
	// Multiplier times the recent latency is the deadline (default 4): a request that has
	// waited four times as long as the slowest recent answer is very likely stuck.
	Multiplier float64
	// Counters, when set, counts hedges, hedges that won, and calls given up.
	Counters *Counters
}

const (
	defaultHedgeFloor      = time.Second
	defaultHedgeCeiling    = 10 * time.Second
	defaultHedgeMultiplier = 4
	// latencyWindow is how many recent answers a deadline is computed from. Its p99 is
	// the slowest of them: with 64 samples the 99th percentile is the maximum, which is what
	// lets one slow answer (a listing of a huge prefix) raise the deadline at once.
	latencyWindow = 64
	// maxResumes bounds how many times in a row a read is resumed without any byte arriving.
	maxResumes = 2
)

// WithHedging returns a view of b whose metadata calls (Stat, List) and reads have a bounded
// latency even when the backend stalls:
//
//   - A Stat or List page that has not answered within the hedge deadline D is sent again in
//     parallel, and the first answer wins (the other attempt is cancelled). If neither has
//     answered when the second attempt has also waited D, the call fails with an error
//     wrapping context.DeadlineExceeded (EIO at the mount). The same holds for opening a
//     range read (until its response headers arrive).
//   - A range read whose response stops delivering bytes for D (while the caller waits in
//     Read) is resumed from the current offset with a new request; after maxResumes resumes
//     without a byte, Read fails as above. Only reads of a pinned generation (gen > 0) are
//     resumed, so a resumed read never mixes two generations; reads of the live generation
//     fail at the first stall.
//
// The policy: D = clamp(Multiplier × recent p99, Floor, Ceiling), computed separately for
// Stat, List and read openings (whose time to the first byte also serves as the pace for
// "stopped delivering bytes"). Recent p99 is the slowest of the last 64 answers (successes,
// not-found and precondition answers) that took at most Ceiling, including late answers of
// attempts that a call gave up on: a backend that is slow rather than stalled (a listing of a
// huge prefix) raises its own deadline after one failure, while a stall beyond Ceiling is not
// learned as normal. Before any answer D is Floor. So with the defaults and a healthy
// backend, a metadata call that stalls fails after 2 s, and so does a lookup (a Stat and a
// List page in parallel); a lookup that first tries a listing of the directory and then the
// name (fs does so in a directory with many lookups) fails after 4 s.
//
// Writes, copies, deletes and metadata updates pass through unchanged: they are not
// idempotent under concurrency, and store/gcs retries them itself.
func WithHedging(b Bucket, opts HedgeOptions) Bucket {
	if opts.Floor <= 0 {
		opts.Floor = defaultHedgeFloor
	}
	if opts.Ceiling < opts.Floor {
		opts.Ceiling = max(defaultHedgeCeiling, opts.Floor)
	}
	if opts.Multiplier <= 0 {
		opts.Multiplier = defaultHedgeMultiplier
	}
	return &hedgeBucket{Bucket: b, opts: opts}
}

type hedgeBucket struct {
	Bucket // writes, copies, deletes, metadata updates and Name pass through
	opts   HedgeOptions

	stat, list, read latencies
}

// latencies is a ring of recent answer latencies of one kind of call.
type latencies struct {
	mu   sync.Mutex // guards the fields below
	ring [latencyWindow]time.Duration
	n    int // samples recorded, capped at latencyWindow
	next int
}

func (l *latencies) record(d time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.next] = d
	l.next = (l.next + 1) % latencyWindow
	l.n = min(l.n+1, latencyWindow)
}

// p99 is the slowest recent answer (0 before any).
func (l *latencies) p99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var m time.Duration
	for _, d := range l.ring[:l.n] {
		m = max(m, d)
	}
	return m
}

// deadline is the hedge deadline of a call whose recent answers are l.
func (h *hedgeBucket) deadline(l *latencies) time.Duration {
	d := time.Duration(h.opts.Multiplier * float64(l.p99()))
	return min(max(d, h.opts.Floor), h.opts.Ceiling)
}

// answered reports whether err is the backend's answer (rather than a failure to get one).
func answered(err error) bool {
	return err == nil || errors.Is(err, ErrNotExist) || errors.Is(err, ErrPrecondition)
}

type attemptResult[T any] struct {
	v       T
	err     error
	attempt int
	cancel  context.CancelFunc // the attempt's context; the winner's is handed to the caller
	bound   *time.Timer        // cancels the attempt if it is still running after 2 × Ceiling
}

// hedge runs call, sending it again if it has not answered within the deadline (see
// WithHedging), and returns the first result with the winner's cancel function, which the
// caller must call when done with the result (nil with an error). Attempts run on contexts detached from ctx so
// that an attempt the call gave up on can still finish and teach l its latency (bounded by
// twice Ceiling); the winner's context follows ctx from then on. discard releases a result
// nobody will use (a reader to close).
func hedge[T any](ctx context.Context, h *hedgeBucket, l *latencies, what string,
	call func(context.Context) (T, error), discard func(T)) (T, context.CancelFunc, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, nil, err
	}
	d := h.deadline(l)
	results := make(chan attemptResult[T], 2)
	var (
		mu      sync.Mutex // guards decided and cancels
		decided bool
		cancels []context.CancelFunc
	)
	base := context.WithoutCancel(ctx)
	launch := func(attempt int) {
		actx, cancel := context.WithCancel(base)
		bound := time.AfterFunc(2*h.opts.Ceiling, cancel) // stopped when the attempt wins
		mu.Lock()
		cancels = append(cancels, cancel)
		mu.Unlock()
		go func() {
			start := time.Now()
			v, err := call(actx)
			if took := time.Since(start); answered(err) && took <= h.opts.Ceiling {
				l.record(took)
			}
			mu.Lock()
			defer mu.Unlock()
			if decided {
				cancel()
				if err == nil && discard != nil {
					discard(v)
				}
				return
			}
			results <- attemptResult[T]{v: v, err: err, attempt: attempt, cancel: cancel, bound: bound}
		}()
	}
	// decide ends the call: every attempt but the winner (if any) is cancelled, and results
	// that arrive later are discarded by their goroutines.
	decide := func(winner *attemptResult[T], cancelLosers bool) {
		mu.Lock()
		decided = true
		for len(results) > 0 {
			r := <-results
			if winner != nil && r.attempt == winner.attempt {
				continue
			}
			r.cancel()
			if r.err == nil && discard != nil {
				discard(r.v)
			}
		}
		if cancelLosers {
			for i, c := range cancels {
				if winner == nil || i+1 != winner.attempt {
					c()
				}
			}
		}
		mu.Unlock()
	}

	start := time.Now()
	launch(1)
	launched, failed := 1, 0
	timer := time.NewTimer(d)
	defer timer.Stop()
	var lastErr error
	for {
		select {
		case r := <-results:
			if r.err != nil && !answered(r.err) && failed+1 < launched {
				// This attempt failed; another is still out, and may answer.
				failed++
				lastErr = r.err
				r.cancel()
				continue
			}
			if r.attempt > 1 {
				h.opts.Counters.hedgeWon()
			}
			r.bound.Stop()
			decide(&r, true)
			if r.err != nil {
				r.cancel()
				return zero, nil, r.err
			}
			stop := context.AfterFunc(ctx, r.cancel)
			cancel := func() { stop(); r.cancel() }
			return r.v, cancel, r.err
		case <-timer.C:
			if launched < 2 {
				h.opts.Counters.Hedged()
				launch(2)
				launched++
				timer.Reset(d)
				continue
			}
			h.opts.Counters.gaveUp()
			decide(nil, false) // stragglers may still answer, and are learned
			err := fmt.Errorf("%s: no answer within %v (%d attempts, hedge deadline %v): %w",
				what, time.Since(start).Round(time.Millisecond), launched, d, context.DeadlineExceeded)
			if lastErr != nil {
				err = fmt.Errorf("%w (an attempt failed: %v)", err, lastErr)
			}
			return zero, nil, err
		case <-ctx.Done():
			decide(nil, true)
			return zero, nil, ctx.Err()
		}
	}
}

func (h *hedgeBucket) Stat(ctx context.Context, name string) (Attrs, error) {
	a, cancel, err := hedge(ctx, h, &h.stat, "stat "+name, func(ctx context.Context) (Attrs, error) {
		return h.Bucket.Stat(ctx, name)
	}, nil)
	if cancel != nil {
		cancel()
	}
	return a, err
}

func (h *hedgeBucket) List(ctx context.Context, opts ListOptions) (Page, error) {
	p, cancel, err := hedge(ctx, h, &h.list, "list "+opts.Prefix, func(ctx context.Context) (Page, error) {
		return h.Bucket.List(ctx, opts)
	}, nil)
	if cancel != nil {
		cancel()
	}
	return p, err
}

func (h *hedgeBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	r := &resumingReader{h: h, ctx: ctx, name: name, gen: gen, off: off, n: n}
	if err := r.open(); err != nil {
		return nil, err
	}
	return r, nil
}

// resumingReader is a range read that resumes from its current offset, with a new request,
// when its response stops delivering bytes. Read and Close are not safe for concurrent use
// (as with any io.Reader); the watchdog, on its own goroutine, only cancels the current
// attempt.
type resumingReader struct {
	h    *hedgeBucket
	ctx  context.Context
	name string
	gen  int64
	off  int64 // offset of the next byte
	n    int64 // bytes still wanted (< 0: to the end)

	cur     io.ReadCloser
	resumes int // resumes in a row without a byte

	// mu guards the fields below, shared with the watchdog.
	mu       sync.Mutex
	cancel   context.CancelFunc // the current attempt's context
	stalled  bool               // the watchdog cancelled the current attempt
	blocked  time.Time          // when the pending Read began; zero when none is pending
	watchdog *time.Timer
	closed   bool
}

func (r *resumingReader) open() error {
	rc, cancel, err := hedge(r.ctx, r.h, &r.h.read, fmt.Sprintf("read %s at %d", r.name, r.off),
		func(ctx context.Context) (io.ReadCloser, error) {
			return r.h.Bucket.NewRangeReader(ctx, r.name, r.gen, r.off, r.n)
		}, func(rc io.ReadCloser) { rc.Close() })
	if err != nil {
		return err
	}
	r.cur = rc
	r.mu.Lock()
	r.cancel, r.stalled = cancel, false
	if r.watchdog == nil {
		r.watchdog = time.AfterFunc(r.h.deadline(&r.h.read), r.watch)
	}
	r.mu.Unlock()
	return nil
}

// watch runs on the watchdog timer: it cancels the current attempt when a Read has been
// blocked for the read deadline, and re-arms itself until the reader is closed.
func (r *resumingReader) watch() {
	d := r.h.deadline(&r.h.read)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	next := d
	if !r.blocked.IsZero() && !r.stalled {
		if waited := time.Since(r.blocked); waited >= d {
			r.stalled = true
			r.cancel()
		} else {
			next = d - waited
		}
	}
	r.watchdog.Reset(next)
}

func (r *resumingReader) setBlocked(t time.Time) (stalled bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocked = t
	return r.stalled
}

func (r *resumingReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return 0, errors.New("store: read after close")
	}
	for {
		if r.cur == nil {
			if err := r.open(); err != nil {
				return 0, err
			}
		}
		r.setBlocked(time.Now())
		k, err := r.cur.Read(p)
		stalled := r.setBlocked(time.Time{})
		if k > 0 {
			r.off += int64(k)
			if r.n >= 0 {
				r.n -= int64(k)
			}
			r.resumes = 0
		}
		if err == nil || err == io.EOF || !stalled {
			return k, err
		}
		// The watchdog cut a response that had stopped delivering bytes.
		r.cur.Close()
		r.cur = nil
		if r.n == 0 {
			return k, io.EOF
		}
		if r.gen <= 0 || r.resumes >= maxResumes || r.ctx.Err() != nil {
			r.h.opts.Counters.gaveUp()
			return k, fmt.Errorf("read %s at %d: no byte for %v (%d resumes): %w",
				r.name, r.off, r.h.deadline(&r.h.read), r.resumes, context.DeadlineExceeded)
		}
		r.resumes++
		r.h.opts.Counters.Hedged()
		if k > 0 {
			return k, nil // the next Read resumes
		}
	}
}

func (r *resumingReader) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.watchdog != nil {
		r.watchdog.Stop()
	}
	cancel := r.cancel
	r.mu.Unlock()
	var err error
	if r.cur != nil {
		err = r.cur.Close()
	}
	if cancel != nil {
		cancel()
	}
	return err
}
