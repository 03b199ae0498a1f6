package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"
)

// ErrUnavailable is wrapped by the errors of calls that WithBreaker failed at once, without a
// request, because the backend has failed every call of their kind for a while.
var ErrUnavailable = errors.New("the storage backend is not answering (failing at once while a probe retries in the background)")

// BreakerOptions configure WithBreaker. Zero fields take the defaults below.
type BreakerOptions struct {
	// Window is how long every call of a kind must have failed (counted from the start of the
	// first failed call with no answer since) before the circuit opens (default 5 s).
	Window time.Duration
	// MinFailures is how many calls in a row must have failed too (default 5): one slow
	// failure is not an outage.
	MinFailures int
	// ProbeEvery is how often an open circuit lets a call's request go to the backend, in the
	// background, to find out whether it answers again (default 1 s).
	ProbeEvery time.Duration
	// Counters, when set, counts circuits opened, open now, and calls failed at once.
	Counters *Counters
	// Logger receives one line when a circuit opens and one when it closes (default: none).
	Logger *slog.Logger
}

const (
	defaultBreakerWindow      = 5 * time.Second
	defaultBreakerMinFailures = 5
	defaultBreakerProbeEvery  = time.Second
	// probeTimeout bounds a probe whatever the stack below does.
	probeTimeout = 30 * time.Second
)

// WithBreaker returns a view of b that stops waiting for a backend that is down. It keeps a
// circuit for metadata calls (Stat, List) and one for reads (NewRangeReader and the reader's
// bytes). A call of a kind that fails without the backend's answer (an error other than
// not-found, precondition and permission answers: a timeout, a stall given up, a 5xx, a
// connection refused) adds to its circuit's failure streak; any answer, or a read's first
// byte, ends the streak. When the streak has lasted Window and counts MinFailures calls, the
// circuit opens: calls of that kind fail at once with an error wrapping ErrUnavailable (EIO
// at the mount), and at most every ProbeEvery one of them is sent to the backend in the
// background as a probe (a read probe asks for one byte). The first answer, of a probe or of
// a call that was already under way, closes the circuit. Calls the caller cancelled do not
// count. Writes, copies, deletes and metadata updates pass through: they are retried by
// store/gcs, and the caller must hear their own outcome.
//
// Put it above the calls' own bounds (WithTimeout, WithHedging), so that a failure is the
// whole call's, after hedges and retries.
func WithBreaker(b Bucket, opts BreakerOptions) Bucket {
	if opts.Window <= 0 {
		opts.Window = defaultBreakerWindow
	}
	if opts.MinFailures <= 0 {
		opts.MinFailures = defaultBreakerMinFailures
	}
	if opts.ProbeEvery <= 0 {
		opts.ProbeEvery = defaultBreakerProbeEvery
	}
	br := &breakerBucket{Bucket: b}
	br.meta = circuit{kind: "metadata", bucket: b.Name(), opts: opts}
	br.media = circuit{kind: "read", bucket: b.Name(), opts: opts}
	return br
}

type breakerBucket struct {
	Bucket // writes, copies, deletes, metadata updates and Name pass through

	meta, media circuit
}

// circuit is the failure streak and state of one kind of call.
type circuit struct {
	kind, bucket string
	opts         BreakerOptions

	// mu guards the fields below; it is never held across a call.
	mu        sync.Mutex
	open      bool
	failures  int       // calls failed in a row
	since     time.Time // start of the first of them; zero when the last outcome was an answer
	openedAt  time.Time
	lastProbe time.Time
	probing   bool
}

// reject reports whether the circuit is open; then probe (when one is due) runs in the
// background, and the caller fails at once.
func (c *circuit) reject(probe func(context.Context) error) error {
	c.mu.Lock()
	if !c.open {
		c.mu.Unlock()
		return nil
	}
	launch := !c.probing && time.Since(c.lastProbe) >= c.opts.ProbeEvery
	if launch {
		c.probing, c.lastProbe = true, time.Now()
	}
	open := time.Since(c.openedAt)
	c.mu.Unlock()
	c.opts.Counters.failedFast()
	if launch {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), probeTimeout)
			defer cancel()
			start := time.Now()
			err := probe(ctx)
			c.mu.Lock()
			c.probing = false
			c.mu.Unlock()
			c.done(ctx, start, err)
		}()
	}
	return fmt.Errorf("%s calls to gs://%s have failed for %v: %w", c.kind, c.bucket, open.Round(time.Second), ErrUnavailable)
}

// done records the outcome of a call (or probe) that started at start on ctx.
func (c *circuit) done(ctx context.Context, start time.Time, err error) {
	if err != nil && errors.Is(ctx.Err(), context.Canceled) {
		return // the caller gave up: no news of the backend
	}
	c.mu.Lock()
	if err == nil || answered(err) || errors.Is(err, ErrPermission) {
		wasOpen := c.open
		c.open, c.failures, c.since = false, 0, time.Time{}
		downFor := time.Since(c.openedAt)
		c.mu.Unlock()
		if wasOpen {
			c.opts.Counters.circuitClosed()
			if c.opts.Logger != nil {
				c.opts.Logger.Info("storage answers again: calls go to the backend again", "bucket", c.bucket, "calls", c.kind, "failed_at_once_for", downFor.Round(time.Millisecond))
			}
		}
		return
	}
	if c.failures == 0 || start.Before(c.since) {
		c.since = start
	}
	c.failures++
	opened := !c.open && c.failures >= c.opts.MinFailures && time.Since(c.since) >= c.opts.Window
	if opened {
		c.open, c.openedAt, c.lastProbe = true, time.Now(), time.Now()
	}
	failures, since := c.failures, c.since
	c.mu.Unlock()
	if opened {
		c.opts.Counters.circuitOpened()
		if c.opts.Logger != nil {
			c.opts.Logger.Warn("storage is not answering: calls fail at once until a probe gets an answer",
				"bucket", c.bucket, "calls", c.kind, "failed_in_a_row", failures, "for", time.Since(since).Round(time.Millisecond), "last_err", err)
		}
	}
}

func (b *breakerBucket) Stat(ctx context.Context, name string) (Attrs, error) {
	call := func(ctx context.Context) (Attrs, error) { return b.Bucket.Stat(ctx, name) }
	if err := b.meta.reject(func(ctx context.Context) error { _, err := call(ctx); return err }); err != nil {
		return Attrs{}, fmt.Errorf("stat %s: %w", name, err)
	}
	start := time.Now()
	a, err := call(ctx)
	b.meta.done(ctx, start, err)
	return a, err
}

func (b *breakerBucket) List(ctx context.Context, opts ListOptions) (Page, error) {
	call := func(ctx context.Context) (Page, error) { return b.Bucket.List(ctx, opts) }
	if err := b.meta.reject(func(ctx context.Context) error { _, err := call(ctx); return err }); err != nil {
		return Page{}, fmt.Errorf("list %s: %w", opts.Prefix, err)
	}
	start := time.Now()
	p, err := call(ctx)
	b.meta.done(ctx, start, err)
	return p, err
}

func (b *breakerBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	probe := func(ctx context.Context) error {
		r, err := b.Bucket.NewRangeReader(ctx, name, gen, off, 1)
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = r.Read(make([]byte, 1))
		if err == io.EOF {
			err = nil
		}
		return err
	}
	if err := b.media.reject(probe); err != nil {
		return nil, fmt.Errorf("read %s at %d: %w", name, off, err)
	}
	start := time.Now()
	r, err := b.Bucket.NewRangeReader(ctx, name, gen, off, n)
	if err != nil {
		b.media.done(ctx, start, err)
		return nil, err
	}
	return &breakerReader{ReadCloser: r, c: &b.media, ctx: ctx, start: start}, nil
}

// breakerReader reports a read's first byte (or EOF) as an answer, and a failed Read as a
// failure.
type breakerReader struct {
	io.ReadCloser
	c        *circuit
	ctx      context.Context
	start    time.Time
	answered bool
}

func (r *breakerReader) Read(p []byte) (int, error) {
	k, err := r.ReadCloser.Read(p)
	switch {
	case err != nil && err != io.EOF:
		r.c.done(r.ctx, r.start, err)
	case !r.answered && (k > 0 || err == io.EOF):
		r.answered = true
		r.c.done(r.ctx, r.start, nil)
	}
	return k, err
}
