package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// pattern returns the bytes of generation gen of an object of size n: little-endian 8-byte
// words gen<<40 | offset, so a misplaced or stale byte reveals where it came from.
func pattern(gen, n int64) []byte {
	b := make([]byte, (n+7)/8*8)
	for off := int64(0); off < int64(len(b)); off += 8 {
		binary.LittleEndian.PutUint64(b[off:], uint64(gen)<<40|uint64(off))
	}
	return b[:n]
}

type request struct {
	Name        string
	Gen, Off, N int64
}

// fakeSource serves registered object generations and records every range request.
type fakeSource struct {
	mu       sync.Mutex
	objects  map[string][]byte // name + "#" + gen → bytes
	requests []request
	ctxs     []context.Context
	// gate, when non-nil, makes every request wait for it to be closed before returning a body.
	gate chan struct{}
	// started receives one value per request (non-blocking) when non-nil.
	started chan request
	// mode: "" serves exactly the range; "short" drops the last byte; "long" returns the
	// whole object from off (like decompressive transcoding); "err" fails.
	mode  string
	delay time.Duration
	// body, when non-nil, may replace the body of a request (flip a byte, cut it short).
	body func(r request, b []byte) io.Reader
}

func newFakeSource() *fakeSource { return &fakeSource{objects: map[string][]byte{}} }

func (s *fakeSource) put(name string, gen int64, data []byte) Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.objects[fmt.Sprintf("%s#%d", name, gen)] = data
	return Object{Bucket: "bkt", Name: name, Generation: gen, Size: int64(len(data))}
}

func (s *fakeSource) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	s.mu.Lock()
	data, ok := s.objects[fmt.Sprintf("%s#%d", name, gen)]
	if n < 0 && ok { // to the end, as store.Bucket allows
		n = int64(len(data)) - off
	}
	r := request{name, gen, off, n}
	s.requests = append(s.requests, r)
	s.ctxs = append(s.ctxs, ctx)
	gate, started, mode, delay, body := s.gate, s.started, s.mode, s.delay, s.body
	s.mu.Unlock()
	if started != nil {
		select {
		case started <- r:
		default:
		}
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if delay > 0 {
		time.Sleep(delay)
	}
	if !ok {
		return nil, fmt.Errorf("fake: %s gen %d: %w", name, gen, fs.ErrNotExist)
	}
	if off < 0 || n < 0 || off+n > int64(len(data)) {
		return nil, fmt.Errorf("fake: bad range %d+%d of %d", off, n, len(data))
	}
	switch mode {
	case "short":
		return io.NopCloser(bytes.NewReader(data[off : off+n-1])), nil
	case "long":
		return io.NopCloser(bytes.NewReader(data[off:])), nil
	case "err":
		return nil, errors.New("fake: injected failure")
	}
	if body != nil {
		return io.NopCloser(body(r, data[off:off+n])), nil
	}
	return io.NopCloser(bytes.NewReader(data[off : off+n])), nil
}

func (s *fakeSource) reqs() []request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func (s *fakeSource) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests, s.ctxs = nil, nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func openTest(t testing.TB, opts Options) *Cache {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t)
	}
	c, err := Open(opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if !c.isClosed.Load() {
			waitIdle(t, c)
			if err := c.checkInvariants(true); err != nil {
				t.Errorf("cache invariant: %v", err)
			}
		}
		c.Close()
	})
	return c
}

// waitIdle waits until no fetch is in progress (background readahead included).
func waitIdle(t testing.TB, c *Cache) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		busy := len(c.busy) + len(c.toWrite)
		for _, m := range c.mem {
			if m.state != stInMemory && m.state != stCached {
				busy++
			}
		}
		c.mu.Unlock()
		if busy == 0 && c.Stats().FetchesInFlight == 0 && c.pendingWrites.Load() == 0 && c.fetchesRunning.Load() == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fetches still in progress after 30s: %d busy", busy)
		}
		time.Sleep(time.Millisecond)
	}
}

// chunkFiles lists the data files under dir and the disk space all cache files (data and
// index) occupy: allocated blocks, since data files are sparse.
func chunkFiles(t testing.TB, dir string) (data []string, allocated int64) {
	t.Helper()
	err := filepath.WalkDir(filepath.Join(dir, layoutVersion), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		if strings.HasSuffix(p, ".data") {
			data = append(data, p)
		}
		allocated += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return data, allocated
}

// readAll reads obj sequentially through c in reads of size step and returns the bytes.
func readAll(t testing.TB, c *Cache, src Source, obj Object, step int) []byte {
	t.Helper()
	out, err := readToEnd(c, src, obj, step)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// readToEnd reads obj from start to end in reads of step bytes, and returns what it read up to
// the first error other than io.EOF.
func readToEnd(c *Cache, src Source, obj Object, step int) ([]byte, error) {
	var out []byte
	buf := make([]byte, step)
	for off := int64(0); ; off += int64(step) {
		n, err := c.ReadAt(context.Background(), src, obj, buf, off)
		if err == io.EOF {
			return append(out, buf[:n]...), nil
		}
		if err != nil {
			return out, fmt.Errorf("ReadAt(%d): %w", off, err)
		}
		out = append(out, buf[:n]...)
	}
}

func mustEqual(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	if len(got) != len(want) {
		t.Fatalf("%s: got %d bytes, want %d", what, len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: first difference at byte %d: got %#x want %#x", what, i, got[i], want[i])
		}
	}
}

// corrupt rewrites one byte of the file at off.
func corrupt(t testing.TB, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var b [1]byte
	if _, err := f.ReadAt(b[:], off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], off); err != nil {
		t.Fatal(err)
	}
}

// evict writes path's dirty pages back and drops them from the page cache, so that the next
// read comes from the disk. It fails on a filesystem that keeps its pages (tmpfs): set TMPDIR
// to a disk filesystem.
func evict(t testing.TB, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	for off := int64(0); off < st.Size(); off += 4096 {
		if resident(f, off, 1) {
			t.Fatalf("%s: page at %d still in the page cache after FADV_DONTNEED (tmpfs?); set TMPDIR to a disk filesystem", path, off)
		}
	}
}

// dropMemory pushes every chunk out of memory, so that the next reads come from the data
// files. No fetch, write or reply may be in progress (waitIdle first).
func dropMemory(t testing.TB, c *Cache) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, m := range c.mem {
		if m.evictRank() < 0 {
			t.Fatalf("chunk %d of %s is busy (%s, %d references)", m.k.Index, m.k.Name, m.state, m.refs)
		}
		if m.state == stInMemory {
			m.move(stAbsent)
		}
		c.untableLocked(m)
	}
}

// waitWhole waits for OpenWhole(obj) to grant a view (its units checked in the background).
func waitWhole(t testing.TB, c *Cache, obj Object) *Whole {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if w, ok := c.OpenWhole(obj); ok {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("OpenWhole of %s still refused after 10 s: %+v", obj.Name, c.Stats())
		}
	}
}
