package gcs

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"cloud.google.com/go/storage"
	"github.com/googleapis/gax-go/v2"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
)

// Options configures NewClient. The zero value talks to real GCS with application-default
// credentials (or to $STORAGE_EMULATOR_HOST when that is set).
type Options struct {
	// Endpoint is "" for real GCS (or STORAGE_EMULATOR_HOST when set), else an emulator base URL
	// such as "http://127.0.0.1:4443". With an endpoint no credentials are used and reads go
	// through the JSON API.
	Endpoint string
	// ClientOptions are passed to storage.NewClient when Endpoint is "" (credentials, mostly).
	ClientOptions []option.ClientOption
	// MaxAttempts bounds the attempts of one retried call (default 6).
	MaxAttempts int
	// RetryDeadline bounds the total time spent retrying one call, and one upload chunk
	// (default 2m).
	RetryDeadline time.Duration
	// UserAgent, when set, is sent with every request.
	UserAgent string
	// Counters, when set, counts the uploads whose outcome had to be checked (see doc.go,
	// "Unknown outcomes").
	Counters *store.Counters
}

const (
	defaultMaxAttempts   = 6
	defaultRetryDeadline = 2 * time.Minute
	// defaultChunkSize is the Go client's own default: one resumable-upload request per 16 MiB,
	// which is also the memory each open writer holds.
	defaultChunkSize = 16 << 20
	// defaultPageSize is GCS's own default and maximum page size for listings.
	defaultPageSize = 1000
	// maxComposeSources is GCS's limit on the sources of one compose call.
	maxComposeSources = 32
)

// Client is a GCS client. It is safe for concurrent use.
type Client struct {
	c             *storage.Client
	maxAttempts   int
	retryDeadline time.Duration
	counters      *store.Counters
}

// NewClient creates a client. It does not contact the server.
func NewClient(ctx context.Context, opts Options) (*Client, error) {
	var copts []option.ClientOption
	switch {
	case opts.Endpoint != "":
		ep := strings.TrimRight(opts.Endpoint, "/")
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			return nil, fmt.Errorf("gcs: endpoint %q: want a base URL such as http://127.0.0.1:4443", opts.Endpoint)
		}
		copts = append(copts,
			option.WithEndpoint(ep+"/storage/v1/"),
			option.WithoutAuthentication())
		// Reads stay on the XML API (the client's default, as on real GCS): the JSON API
		// refuses ReadCompressed ("custom Accept-Encoding headers not allowed"). The emulator
		// must therefore run with its public host equal to the endpoint's host, as
		// internal/emulator does.
	default:
		copts = append(copts, opts.ClientOptions...)
	}
	if opts.UserAgent != "" {
		copts = append(copts, option.WithUserAgent(opts.UserAgent))
	}
	c, err := storage.NewClient(ctx, copts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: new client: %w", err)
	}
	attempts := opts.MaxAttempts
	if attempts <= 0 {
		attempts = defaultMaxAttempts
	}
	deadline := opts.RetryDeadline
	if deadline <= 0 {
		deadline = defaultRetryDeadline
	}
	c.SetRetry(
		// gax.Backoff pauses a random duration up to the current bound (full jitter).
		storage.WithBackoff(gax.Backoff{Initial: 100 * time.Millisecond, Max: 5 * time.Second, Multiplier: 2}),
		// Every write plxfs makes carries a generation precondition, which is what makes the
		// client consider it idempotent and retry it.
		storage.WithPolicy(storage.RetryIdempotent),
		storage.WithMaxAttempts(attempts),
		storage.WithMaxRetryDuration(deadline),
	)
	return &Client{c: c, maxAttempts: attempts, retryDeadline: deadline, counters: opts.Counters}, nil
}

// Close releases the client's connections.
func (c *Client) Close() error { return c.c.Close() }

// Bucket returns the named bucket. It does not check that the bucket exists; the first call
// on a missing bucket fails with an error wrapping store.ErrNotExist.
func (c *Client) Bucket(name string) store.Bucket {
	return &bucket{name: name, h: c.c.Bucket(name), maxAttempts: c.maxAttempts, retryDeadline: c.retryDeadline, counters: c.counters}
}

type bucket struct {
	name          string
	h             *storage.BucketHandle
	maxAttempts   int
	retryDeadline time.Duration
	counters      *store.Counters // nil: not counted
}

var _ store.Bucket = (*bucket)(nil)

func (b *bucket) Name() string { return b.name }

func (b *bucket) obj(name string) *storage.ObjectHandle { return b.h.Object(name) }

// conds turns plxfs's IfGen into a GCS precondition.
func conds(ifGen int64) storage.Conditions {
	if ifGen == 0 {
		return storage.Conditions{DoesNotExist: true}
	}
	return storage.Conditions{GenerationMatch: ifGen}
}

func checkName(op, name string) error {
	if name == "" {
		return fmt.Errorf("gcs: %s: empty object name", op)
	}
	return nil
}

func (b *bucket) Stat(ctx context.Context, name string) (store.Attrs, error) {
	if err := checkName("stat", name); err != nil {
		return store.Attrs{}, err
	}
	a, err := b.obj(name).Attrs(ctx)
	if err != nil {
		return store.Attrs{}, b.wrap("stat", name, err)
	}
	return toAttrs(a), nil
}

func (b *bucket) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	q := &storage.Query{Prefix: opts.Prefix, Delimiter: opts.Delimiter, IncludeTrailingDelimiter: opts.IncludeTrailingDelimiter && opts.Delimiter != ""}
	size := opts.PageSize
	if size <= 0 {
		size = defaultPageSize
	}
	it := b.h.Objects(ctx, q)
	var items []*storage.ObjectAttrs
	next, err := iterator.NewPager(it, size, opts.PageToken).NextPage(&items)
	if err != nil {
		return store.Page{}, b.wrap("list", opts.Prefix, err)
	}
	var p store.Page
	for _, a := range items {
		if a.Prefix != "" {
			p.Prefixes = append(p.Prefixes, a.Prefix)
			continue
		}
		p.Objects = append(p.Objects, toAttrs(a))
	}
	// GCS returns names in lexicographic byte order; sort anyway so that the contract does not
	// depend on the server.
	slices.SortFunc(p.Objects, func(x, y store.Attrs) int { return strings.Compare(x.Name, y.Name) })
	slices.Sort(p.Prefixes)
	p.NextPageToken = next
	return p, nil
}

func (b *bucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	if err := checkName("read", name); err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, fmt.Errorf("gcs: read gs://%s/%s: negative offset %d", b.name, name, off)
	}
	o := b.obj(name).ReadCompressed(true)
	if gen > 0 {
		o = o.Generation(gen)
	}
	if n < 0 {
		n = -1
	}
	r, err := o.NewRangeReader(ctx, off, n)
	if err != nil {
		if httpCode(err) == http.StatusRequestedRangeNotSatisfiable {
			// Reading at or past the end: like pread, no bytes and no error.
			return io.NopCloser(strings.NewReader("")), nil
		}
		return nil, b.wrap("read", name, err)
	}
	if gen > 0 && r.Attrs.Generation != 0 && r.Attrs.Generation != gen {
		// A server that ignored the generation parameter served another generation.
		r.Close()
		return nil, fmt.Errorf("gcs: read gs://%s/%s: asked for generation %d, got %d: %w",
			b.name, name, gen, r.Attrs.Generation, store.ErrPrecondition)
	}
	return &reader{r: r, b: b, name: name}, nil
}

// reader maps errors that surface mid-stream (after the client's own retries gave up).
type reader struct {
	r    *storage.Reader
	b    *bucket
	name string
}

func (r *reader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = r.b.wrap("read", r.name, err)
	}
	return n, err
}

func (r *reader) Close() error { return r.r.Close() }

func (b *bucket) NewWriter(ctx context.Context, name string, opts store.WriteOptions) (store.Writer, error) {
	if err := checkName("write", name); err != nil {
		return nil, err
	}
	if opts.IfGen < 0 {
		return nil, fmt.Errorf("gcs: write gs://%s/%s: negative IfGen %d", b.name, name, opts.IfGen)
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	// Upload requests are retried by the API layer below the storage client, which applies
	// neither MaxAttempts nor the retry deadline to them; the budget does (handles from
	// Bucket.Object carry their own copy of the retry configuration, so this affects only
	// this writer).
	budget := &retryBudget{max: b.maxAttempts, deadline: b.retryDeadline}
	o := b.obj(name).If(conds(opts.IfGen)).Retryer(storage.WithErrorFunc(budget.shouldRetry))
	w := o.NewWriter(ctx)
	w.ChunkSize = opts.ChunkSize
	if w.ChunkSize <= 0 {
		w.ChunkSize = defaultChunkSize
	}
	w.ChunkRetryDeadline = b.retryDeadline
	w.ContentType = opts.ContentType
	if w.ContentType == "" {
		// GCS's own default. Not ForceEmptyContentType (which would also skip sniffing): with
		// an empty content type the client cannot re-send a resumable session's first
		// request, so it would not be retried.
		w.ContentType = "application/octet-stream"
	}
	w.Metadata = maps.Clone(opts.Metadata)
	if opts.HasCRC32C {
		w.CRC32C = opts.CRC32C
		w.SendCRC32C = true
	}
	return &writer{w: w, ctx: parent, cancel: cancel, b: b, name: name, crc: crc32.New(crc32c.Table), want: opts, budget: budget}, nil
}

// retryBudget decides retries for one upload: a retryable error is retried until maxAttempts
// consecutive failures or until the failures have lasted the retry deadline. The client
// calls shouldRetry after every request, with a nil error on success, which ends a streak.
type retryBudget struct {
	max      int
	deadline time.Duration

	mu      sync.Mutex // protects fails, since, retried
	fails   int
	since   time.Time // start of the current failure streak
	retried bool      // some request was sent again
}

// didRetry reports whether some request of the upload was sent again.
func (r *retryBudget) didRetry() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.retried
}

func (r *retryBudget) shouldRetry(err error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		r.fails = 0
		return false
	}
	if !storage.ShouldRetry(err) {
		return false
	}
	if r.fails == 0 {
		r.since = time.Now()
	}
	r.fails++
	retry := r.fails < r.max && time.Since(r.since) < r.deadline
	r.retried = r.retried || retry
	return retry
}

// writer is a store.Writer over a storage.Writer. The upload is finalised only by Commit
// (storage.Writer.Close); Abort cancels the context, which stops the upload before the final
// request, so no object is created.
type writer struct {
	w      *storage.Writer
	ctx    context.Context // the caller's
	cancel context.CancelFunc
	b      *bucket
	name   string
	want   store.WriteOptions // for the declared CRC32C
	budget *retryBudget
	crc    hash.Hash32 // CRC32C of the bytes written so far; used only by Write
	size   int64       // bytes written so far; used only by Write

	mu    sync.Mutex // protects done, attrs, err
	done  bool
	attrs store.Attrs
	err   error
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	w.crc.Write(p[:n])
	w.size += int64(n)
	if err != nil {
		err = w.b.wrap("write", w.name, err)
	}
	return n, err
}

func (w *writer) Commit() (store.Attrs, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		if w.err == nil && w.attrs.Name == "" {
			return store.Attrs{}, fmt.Errorf("gcs: write gs://%s/%s: commit after abort", w.b.name, w.name)
		}
		return w.attrs, w.err
	}
	w.done = true
	sum := w.crc.Sum32()
	if w.want.HasCRC32C && sum != w.want.CRC32C {
		// Refuse before finalising: the bytes written are not the ones the caller described.
		w.cancel()
		_ = w.w.Close()
		w.err = fmt.Errorf("gcs: write gs://%s/%s: CRC32C of the %d bytes written is %08x, caller declared %08x; upload cancelled",
			w.b.name, w.name, w.size, sum, w.want.CRC32C)
		return store.Attrs{}, w.err
	}
	err := w.w.Close()
	w.cancel()
	if err != nil && w.ctx.Err() == nil && outcomeUnknown(err, w.budget.didRetry()) {
		// The final request failed in a way that says nothing about what GCS did (a reset,
		// a timeout, a 5xx, or the 412/404 a retry meets when an earlier attempt landed):
		// what the bucket holds decides.
		if a, ok := w.b.landed(w.name, w.want.IfGen, w.size, sum); ok {
			w.attrs = a
			return a, nil
		}
		if w.budget.didRetry() && httpCode(err) == http.StatusNotFound {
			// Not a missing object: the upload session is gone and the bytes did not land.
			w.err = fmt.Errorf("gcs: write gs://%s/%s: the upload session was lost after a retry and the object does not hold the bytes written: %v",
				w.b.name, w.name, err)
			return store.Attrs{}, w.err
		}
	}
	if err != nil {
		w.err = w.b.wrap("write", w.name, err)
		return store.Attrs{}, w.err
	}
	a := toAttrs(w.w.Attrs())
	if a.Size != w.size || a.CRC32C != sum {
		// The server stored other bytes than were written (a corrupted or duplicated chunk).
		// Remove that generation rather than leave a wrong object behind.
		ctx, cancel := context.WithTimeout(context.Background(), w.b.retryDeadline)
		derr := w.b.Delete(ctx, w.name, a.Generation)
		cancel()
		w.err = fmt.Errorf("gcs: write gs://%s/%s: server stored %d bytes with CRC32C %08x, wrote %d bytes with CRC32C %08x; generation %d deleted (delete error: %v)",
			w.b.name, w.name, a.Size, a.CRC32C, w.size, sum, a.Generation, derr)
		return store.Attrs{}, w.err
	}
	w.attrs = a
	return w.attrs, nil
}

func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	w.cancel()
	_ = w.w.Close() // returns context.Canceled; waits for the upload goroutine to stop
}

func (b *bucket) Compose(ctx context.Context, dst string, srcs []string, opts store.WriteOptions) (store.Attrs, error) {
	if err := checkName("compose", dst); err != nil {
		return store.Attrs{}, err
	}
	if len(srcs) == 0 || len(srcs) > maxComposeSources {
		return store.Attrs{}, fmt.Errorf("gcs: compose gs://%s/%s: %d sources (want 1 to %d)", b.name, dst, len(srcs), maxComposeSources)
	}
	hs := make([]*storage.ObjectHandle, len(srcs))
	for i, s := range srcs {
		if err := checkName("compose", s); err != nil {
			return store.Attrs{}, err
		}
		hs[i] = b.obj(s)
	}
	rec := &retryRecorder{}
	c := b.obj(dst).If(conds(opts.IfGen)).Retryer(storage.WithErrorFunc(rec.shouldRetry)).ComposerFrom(hs...)
	c.ContentType = opts.ContentType
	c.Metadata = maps.Clone(opts.Metadata)
	if opts.HasCRC32C {
		c.CRC32C = opts.CRC32C
		c.SendCRC32C = true
	}
	a, err := c.Run(ctx)
	if err != nil && ctx.Err() == nil && opts.HasCRC32C && outcomeUnknown(err, rec.didRetry()) {
		// As in writer.Commit: the compose landed if the live object is a new generation with
		// the declared CRC32C (the size of a compose is not known beforehand).
		if got, ok := b.landed(dst, opts.IfGen, -1, opts.CRC32C); ok {
			return got, nil
		}
	}
	if err != nil {
		return store.Attrs{}, b.wrap("compose", dst, err)
	}
	return toAttrs(a), nil
}

// outcomeUnknown reports whether a write's final error leaves open whether the write landed.
// Only a definitive 4xx answer to the one and only attempt says that GCS did not act (a bad
// request, a refusal, a real precondition conflict). Everything else may hide a landed write:
// a connection reset or timeout (the request may have been processed), a 5xx (GCS documents
// that the operation may have succeeded), and any error at all after a retry, since an
// earlier attempt whose response was lost may have landed; its retry then meets the write's
// own result (412, or 404 for a finalised resumable session).
func outcomeUnknown(err error, retried bool) bool {
	if retried {
		return true
	}
	c := httpCode(err)
	return c == 0 || c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests
}

// landed checks whether a write whose outcome is unknown landed: the live generation of name
// is not ifGen (so the write's precondition held: with ifGen 0, the object exists now), holds
// size bytes (size < 0: any size) and has CRC32C crc. The check itself is a Stat, retried by
// the client; if it fails, the write is reported as failed. A concurrent writer that stored
// the very same bytes cannot be told from this write landing, which is harmless: the object
// holds what the caller wrote. Every check is counted in the Counters.
//
// A request whose response was lost may still be in progress on the server when the check
// runs (its connection was cut, not the work), so a check that finds nothing looks again
// after landedSettle, twice, before the write is reported as failed.
func (b *bucket) landed(name string, ifGen, size int64, crc uint32) (store.Attrs, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), b.retryDeadline)
	defer cancel()
	var a store.Attrs
	ok := false
	for look := 0; look < 3 && !ok; look++ {
		if look > 0 {
			select {
			case <-time.After(landedSettle * time.Duration(look)):
			case <-ctx.Done():
			}
		}
		var err error
		a, err = b.Stat(ctx, name)
		ok = err == nil && a.HasCRC32C && a.CRC32C == crc && (size < 0 || a.Size == size) && a.Generation != ifGen
	}
	b.counters.OutcomeChecked(ok)
	if !ok {
		return store.Attrs{}, false
	}
	return a, true
}

// landedSettle is the pause before landed looks again (then twice as long).
const landedSettle = 250 * time.Millisecond

// retryRecorder is the client's retry predicate, noting whether any request was retried.
type retryRecorder struct{ retried atomic.Bool }

func (r *retryRecorder) shouldRetry(err error) bool {
	retry := storage.ShouldRetry(err)
	if retry {
		r.retried.Store(true)
	}
	return retry
}

func (r *retryRecorder) didRetry() bool { return r.retried.Load() }

func (b *bucket) Copy(ctx context.Context, src string, srcGen int64, dst string, opts store.WriteOptions) (store.Attrs, error) {
	if err := checkName("copy", src); err != nil {
		return store.Attrs{}, err
	}
	if err := checkName("copy", dst); err != nil {
		return store.Attrs{}, err
	}
	s := b.obj(src)
	if srcGen > 0 {
		s = s.Generation(srcGen)
	}
	c := b.obj(dst).If(conds(opts.IfGen)).CopierFrom(s)
	if opts.Metadata != nil {
		c.Metadata = maps.Clone(opts.Metadata)
	}
	c.ContentType = opts.ContentType
	a, err := c.Run(ctx)
	if err != nil {
		return store.Attrs{}, b.wrap("copy "+src+" to", dst, err)
	}
	return toAttrs(a), nil
}

func (b *bucket) Delete(ctx context.Context, name string, gen int64) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	o := b.obj(name)
	if gen > 0 {
		// Deleting a specific generation is idempotent, so the client retries it.
		o = o.Generation(gen)
	}
	if err := o.Delete(ctx); err != nil {
		return b.wrap("delete", name, err)
	}
	return nil
}

func (b *bucket) UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (store.Attrs, error) {
	if err := checkName("update metadata", name); err != nil {
		return store.Attrs{}, err
	}
	o := b.obj(name)
	if gen > 0 {
		o = o.If(storage.Conditions{GenerationMatch: gen})
	}
	// Merging the same keys twice gives the same result, so retrying is safe even though the
	// client only treats metageneration-conditioned updates as idempotent.
	o = o.Retryer(storage.WithPolicy(storage.RetryAlways))
	// An empty map would delete all metadata; plxfs merges, so send at least one key or nothing.
	if len(md) == 0 {
		return b.Stat(ctx, name)
	}
	a, err := o.Update(ctx, storage.ObjectAttrsToUpdate{Metadata: maps.Clone(md)})
	if err != nil {
		return store.Attrs{}, b.wrap("update metadata", name, err)
	}
	return toAttrs(a), nil
}

// toAttrs converts the client's attributes. Metadata keys with empty values are dropped: plxfs
// uses "" to mean "remove", and the emulator stores a removed key as "".
func toAttrs(a *storage.ObjectAttrs) store.Attrs {
	if a == nil {
		return store.Attrs{}
	}
	var md map[string]string
	for k, v := range a.Metadata {
		if v == "" {
			continue
		}
		if md == nil {
			md = make(map[string]string, len(a.Metadata))
		}
		md[k] = v
	}
	return store.Attrs{
		Name:           a.Name,
		Size:           a.Size,
		Generation:     a.Generation,
		Metageneration: a.Metageneration,
		Updated:        a.Updated,
		CRC32C:         a.CRC32C,
		// GCS keeps a CRC32C for every object, composite ones included.
		HasCRC32C:       true,
		MD5:             a.MD5,
		ContentType:     a.ContentType,
		ContentEncoding: a.ContentEncoding,
		Metadata:        md,
	}
}

// httpCode returns the HTTP status carried by a client error, or 0.
func httpCode(err error) int {
	var gerr *googleapi.Error
	if errors.As(err, &gerr) {
		return gerr.Code
	}
	var aerr *apierror.APIError
	if errors.As(err, &aerr) {
		return aerr.HTTPCode()
	}
	return 0
}

// wrap adds context and maps GCS's answers to the store errors: 404 to ErrNotExist, 412 to
// ErrPrecondition, 403 and 401 to ErrPermission.
func (b *bucket) wrap(op, name string, err error) error {
	var sentinel error
	switch code := httpCode(err); {
	case errors.Is(err, storage.ErrObjectNotExist), errors.Is(err, storage.ErrBucketNotExist), code == http.StatusNotFound:
		sentinel = store.ErrNotExist
	case code == http.StatusPreconditionFailed:
		sentinel = store.ErrPrecondition
	case code == http.StatusForbidden, code == http.StatusUnauthorized:
		sentinel = store.ErrPermission
	}
	if sentinel != nil {
		return fmt.Errorf("gcs: %s gs://%s/%s: %w: %w", op, b.name, name, sentinel, err)
	}
	return fmt.Errorf("gcs: %s gs://%s/%s: %w", op, b.name, name, err)
}
