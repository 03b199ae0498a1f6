package metrics

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"github.com/plxfs/plxfs/store"
)

// Bucket returns b with every storage call recorded in m: plxfs_gcs_requests_total{method,code},
// plxfs_gcs_request_duration_seconds{method}, and the bytes read and written. It forwards
// every method unchanged (arguments, results and errors), so it can sit anywhere in a stack
// of decorators. Labels never carry object or bucket names, so the number of series stays
// bounded.
//
// A Read is one NewRangeReader call: it is recorded when the reader is closed (or at once when
// NewRangeReader fails), with the first error other than io.EOF that Read returned, and lasts
// from the request to Close. Bytes count as they are read, so a scrape during a long read
// sees them. A Write is one NewWriter: recorded at Commit (its error) or at an Abort before
// Commit (code "canceled"), or at once when NewWriter fails.
func Bucket(b store.Bucket, m *Metrics) store.Bucket {
	return &bucket{b: b, m: m}
}

type bucket struct {
	b store.Bucket
	m *Metrics
}

var _ store.Bucket = (*bucket)(nil)

// Storage method labels.
const (
	methodStat           = "Stat"
	methodList           = "List"
	methodRead           = "Read"
	methodWrite          = "Write"
	methodCompose        = "Compose"
	methodCopy           = "Copy"
	methodDelete         = "Delete"
	methodUpdateMetadata = "UpdateMetadata"
)

// request records one finished storage call.
func (m *Metrics) request(method string, start time.Time, err error) {
	m.gcsRequests.WithLabelValues(method, Code(err)).Inc()
	m.gcsDuration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

func (b *bucket) Name() string { return b.b.Name() }

func (b *bucket) Stat(ctx context.Context, name string) (store.Attrs, error) {
	start := time.Now()
	a, err := b.b.Stat(ctx, name)
	b.m.request(methodStat, start, err)
	return a, err
}

func (b *bucket) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	start := time.Now()
	p, err := b.b.List(ctx, opts)
	b.m.request(methodList, start, err)
	return p, err
}

func (b *bucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	start := time.Now()
	r, err := b.b.NewRangeReader(ctx, name, gen, off, n)
	if err != nil {
		b.m.request(methodRead, start, err)
		return nil, err
	}
	return &reader{r: r, m: b.m, start: start}, nil
}

func (b *bucket) NewWriter(ctx context.Context, name string, opts store.WriteOptions) (store.Writer, error) {
	start := time.Now()
	w, err := b.b.NewWriter(ctx, name, opts)
	if err != nil {
		b.m.request(methodWrite, start, err)
		return nil, err
	}
	return &writer{w: w, m: b.m, start: start}, nil
}

func (b *bucket) Compose(ctx context.Context, dst string, srcs []string, opts store.WriteOptions) (store.Attrs, error) {
	start := time.Now()
	a, err := b.b.Compose(ctx, dst, srcs, opts)
	b.m.request(methodCompose, start, err)
	return a, err
}

func (b *bucket) Copy(ctx context.Context, src string, srcGen int64, dst string, opts store.WriteOptions) (store.Attrs, error) {
	start := time.Now()
	a, err := b.b.Copy(ctx, src, srcGen, dst, opts)
	b.m.request(methodCopy, start, err)
	return a, err
}

func (b *bucket) Delete(ctx context.Context, name string, gen int64) error {
	start := time.Now()
	err := b.b.Delete(ctx, name, gen)
	b.m.request(methodDelete, start, err)
	return err
}

func (b *bucket) UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (store.Attrs, error) {
	start := time.Now()
	a, err := b.b.UpdateMetadata(ctx, name, gen, md)
	b.m.request(methodUpdateMetadata, start, err)
	return a, err
}

// reader counts the bytes of one ranged read and records the request when closed.
type reader struct {
	r     io.ReadCloser
	m     *Metrics
	start time.Time

	// mu guards err; Read and Close are not called concurrently by any caller we know of,
	// but the io.ReadCloser contract does not promise it.
	mu   sync.Mutex
	err  error // first error other than io.EOF
	once sync.Once
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.m.readFromGCS(int64(n))
	}
	if err != nil && !errors.Is(err, io.EOF) {
		r.mu.Lock()
		if r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
	}
	return n, err
}

func (r *reader) Close() error {
	err := r.r.Close()
	r.once.Do(func() {
		r.mu.Lock()
		rerr := r.err
		r.mu.Unlock()
		r.m.request(methodRead, r.start, rerr)
	})
	return err
}

// writer counts the bytes of one upload and records the request at Commit or Abort.
type writer struct {
	w     store.Writer
	m     *Metrics
	start time.Time
	once  sync.Once
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if n > 0 {
		w.m.writtenToGCS(int64(n))
	}
	return n, err
}

func (w *writer) Commit() (store.Attrs, error) {
	a, err := w.w.Commit()
	w.once.Do(func() { w.m.request(methodWrite, w.start, err) })
	return a, err
}

func (w *writer) Abort() {
	w.w.Abort()
	w.once.Do(func() { w.m.request(methodWrite, w.start, context.Canceled) })
}
