package transfer

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/store/memstore"
)

const testBucket = "b"

// env is a store.Bucket for a test: on an emulator (newEnv), or in memory (newMemEnv).
type env struct {
	emu *emulator.Server // nil in memory
	mem *memstore.Bucket // nil on an emulator
	b   store.Bucket
}

// onBothBackends runs fn as two subtests: on an in-memory bucket and on the emulator.
func onBothBackends(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("mem", func(t *testing.T) { fn(t, newMemEnv(t)) })
	t.Run("emulator", func(t *testing.T) { fn(t, newEnv(t, envOpts{})) })
}

// newMemEnv is an env on an in-memory bucket: for tests of transfer's own logic (faults,
// restarts, cleanup) that need no HTTP and would otherwise start an emulator each.
func newMemEnv(t testing.TB) *env {
	m := memstore.New(testBucket)
	return &env{mem: m, b: m}
}

type envOpts struct {
	backend string
	handler func(http.Handler) http.Handler
}

func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	emu, err := emulator.Start(emulator.Options{Backend: o.backend, Buckets: []string{testBucket}, Handler: o.handler})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Stop)
	c, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: emu.URL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &env{emu: emu, b: c.Bucket(testBucket)}
}

// put stores data as name directly in the emulator.
func (e *env) put(t testing.TB, name string, data []byte) {
	t.Helper()
	if e.mem != nil {
		if _, err := e.mem.Put(name, data, nil); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := e.emu.PutObject(testBucket, name, data, ""); err != nil {
		t.Fatal(err)
	}
}

// content returns the stored bytes of name.
func (e *env) content(t testing.TB, name string) []byte {
	t.Helper()
	if e.mem != nil {
		data, ok := e.mem.Content(name)
		if !ok {
			t.Fatalf("no object %q", name)
		}
		return data
	}
	o, err := e.emu.GetObject(testBucket, name)
	if err != nil {
		t.Fatal(err)
	}
	return o.Content
}

// names lists every object name under prefix.
func (e *env) names(t testing.TB, prefix string) []string {
	t.Helper()
	if e.mem != nil {
		return e.mem.Names(prefix)
	}
	n, err := e.emu.ObjectNames(testBucket, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// randBytes returns n reproducible pseudo-random bytes.
func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// localFiles maps every regular file under root (relative slash path) to its content.
func localFiles(t testing.TB, root string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(root, p)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = data
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// faultBucket decorates a store.Bucket with failures chosen by the test.
type faultBucket struct {
	store.Bucket
	// failCompose, when set, is called for each compose; a non-nil error fails it.
	failCompose func(dst string) error
	// failWrite, when set, is called for each NewWriter; a non-nil error fails the commit.
	failWrite func(name string) error
	// lateCommit, when set, makes every write slow (it commits after that long), and a write
	// whose context is cancelled meanwhile commits anyway, that long after the client gave up:
	// a server that had the whole body. late counts those commits.
	lateCommit time.Duration
	late       sync.WaitGroup
	// readHook, when set, wraps each range reader.
	readHook func(name string, off int64, r io.ReadCloser) io.ReadCloser
	// list adds extra objects to listings (for names the emulator cannot store).
	extra []store.Attrs
}

func (f *faultBucket) Compose(ctx context.Context, dst string, srcs []string, o store.WriteOptions) (store.Attrs, error) {
	if f.failCompose != nil {
		if err := f.failCompose(dst); err != nil {
			return store.Attrs{}, err
		}
	}
	return f.Bucket.Compose(ctx, dst, srcs, o)
}

func (f *faultBucket) NewWriter(ctx context.Context, name string, o store.WriteOptions) (store.Writer, error) {
	if f.lateCommit > 0 {
		if f.failWrite != nil && f.failWrite(name) != nil {
			w, err := f.Bucket.NewWriter(ctx, name, o)
			return &failingWriter{Writer: w, err: f.failWrite(name)}, err
		}
		w, err := f.Bucket.NewWriter(context.WithoutCancel(ctx), name, o)
		return &lateWriter{Writer: w, ctx: ctx, f: f}, err
	}
	w, err := f.Bucket.NewWriter(ctx, name, o)
	if err != nil || f.failWrite == nil {
		return w, err
	}
	if ferr := f.failWrite(name); ferr != nil {
		return &failingWriter{Writer: w, err: ferr}, nil
	}
	return w, nil
}

type failingWriter struct {
	store.Writer
	err error
}

func (w *failingWriter) Commit() (store.Attrs, error) { w.Writer.Abort(); return store.Attrs{}, w.err }

type lateWriter struct {
	store.Writer
	ctx  context.Context
	f    *faultBucket
	sent bool // the server has the body: Abort cannot stop the commit
}

func (w *lateWriter) Abort() {
	if !w.sent {
		w.Writer.Abort()
	}
}

func (w *lateWriter) Commit() (store.Attrs, error) {
	select {
	case <-time.After(w.f.lateCommit):
		return w.Writer.Commit()
	case <-w.ctx.Done():
		w.sent = true
		w.f.late.Add(1)
		go func() {
			defer w.f.late.Done()
			time.Sleep(w.f.lateCommit)
			_, _ = w.Writer.Commit()
		}()
		return store.Attrs{}, w.ctx.Err()
	}
}

func (f *faultBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	r, err := f.Bucket.NewRangeReader(ctx, name, gen, off, n)
	if err != nil || f.readHook == nil {
		return r, err
	}
	return f.readHook(name, off, r), nil
}

func (f *faultBucket) List(ctx context.Context, o store.ListOptions) (store.Page, error) {
	p, err := f.Bucket.List(ctx, o)
	if err != nil || o.PageToken != "" || len(f.extra) == 0 {
		return p, err
	}
	for _, a := range f.extra {
		if strings.HasPrefix(a.Name, o.Prefix) {
			p.Objects = append(p.Objects, a)
		}
	}
	sort.Slice(p.Objects, func(i, j int) bool { return p.Objects[i].Name < p.Objects[j].Name })
	return p, nil
}

// breakAfter is a reader that fails with err after n bytes.
type breakAfter struct {
	io.ReadCloser
	n   int64
	err error
}

func (r *breakAfter) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, r.err
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	k, err := r.ReadCloser.Read(p)
	r.n -= int64(k)
	return k, err
}

// countingProgress records what a Progress sees.
type countingProgress struct {
	files, bytes atomic.Int64
	totalFiles   atomic.Int64
	totalBytes   atomic.Int64
	mu           sync.Mutex
	events       []Event
	composing    []composeCall
}

// composeCall is one Composing report, with the bytes and outcomes reported before it.
type composeCall struct {
	name        string
	parts       int
	bytesBefore int64
	doneBefore  int
}

func (p *countingProgress) Total(f, b int64) { p.totalFiles.Add(f); p.totalBytes.Add(b) }
func (p *countingProgress) Bytes(n int64)    { p.bytes.Add(n) }
func (p *countingProgress) Composing(name string, parts int) {
	p.mu.Lock()
	p.composing = append(p.composing, composeCall{name: name, parts: parts, bytesBefore: p.bytes.Load(), doneBefore: len(p.events)})
	p.mu.Unlock()
}
func (p *countingProgress) Done(ev Event) {
	p.files.Add(1)
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
}

var _ = bytes.Equal
