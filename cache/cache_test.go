package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const testChunk = 64 << 10

var policies = []struct {
	name   string
	policy randomPolicy
}{
	{"adaptive", policyAdaptive},
	{"chunk", policyChunk},
	{"block", policyBlock},
}

// TestReadAtMatchesReference reads random (off, n) ranges of objects of awkward sizes and
// compares them byte for byte with the source, for each random-read policy, with a cache big
// enough for everything and one that keeps evicting.
func TestReadAtMatchesReference(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	sizes := []int64{0, 1, testChunk - 1, testChunk, testChunk + 1, 7*testChunk + 4321}
	for _, pol := range policies {
		for _, maxBytes := range []int64{1 << 30, 5 * testChunk} {
			t.Run(pol.name+"/max"+itoa(maxBytes), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(pol.policy)))
				src := newFakeSource()
				c := openTest(t, Options{MaxBytes: maxBytes, ChunkSize: testChunk, randomPolicy: pol.policy, blockSize: 4096})
				var objs []Object
				var data [][]byte
				for i, size := range sizes {
					d := pattern(int64(i+1), size)
					objs = append(objs, src.put("obj"+itoa(int64(i)), int64(i+1), d))
					data = append(data, d)
				}
				for range 600 {
					i := rng.IntN(len(objs))
					obj, ref := objs[i], data[i]
					off := rng.Int64N(obj.Size + 2*testChunk/3 + 1)
					n := rng.IntN(3 * testChunk)
					if rng.IntN(4) == 0 {
						n = rng.IntN(8192)
					}
					p := make([]byte, n)
					got, err := c.ReadAt(context.Background(), src, obj, p, off)
					var want []byte
					if off < obj.Size {
						want = ref[off:min(off+int64(n), obj.Size)]
					}
					wantEOF := n > 0 && off+int64(n) > obj.Size
					if wantEOF && err != io.EOF || !wantEOF && err != nil {
						t.Fatalf("ReadAt(%s, off %d, n %d) of %d bytes: n=%d err=%v, want EOF=%v", obj.Name, off, n, obj.Size, got, err, wantEOF)
					}
					mustEqual(t, "ReadAt "+obj.Name+" off "+itoa(off), p[:got], want)
				}
				waitIdle(t, c)
				if st := c.Stats(); st.Bytes > maxBytes {
					t.Fatalf("cache holds %d bytes, bound %d", st.Bytes, maxBytes)
				}
				if _, total := chunkFiles(t, c.root); total > maxBytes {
					t.Fatalf("chunk files hold %d bytes, bound %d", total, maxBytes)
				}
				t.Logf("stats %+v", c.Stats())
			})
		}
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }

// TestConcurrentReadersFetchEachChunkOnce: 64 readers of one object, started together, get
// correct bytes and the source sees each chunk requested exactly once.
func TestConcurrentReadersFetchEachChunkOnce(t *testing.T) {
	for _, pol := range policies {
		t.Run(pol.name, func(t *testing.T) {
			src := newFakeSource()
			src.delay = 2 * time.Millisecond
			ref := pattern(7, 40*testChunk+999)
			obj := src.put("big", 7, ref)
			c := openTest(t, Options{ChunkSize: testChunk, randomPolicy: pol.policy, blockSize: 4096})
			start := make(chan struct{})
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for r := range 64 {
				wg.Go(func() {
					<-start
					step := 10000 + 997*r
					buf := make([]byte, step)
					var got []byte
					for off := int64(0); ; off += int64(step) {
						n, err := c.ReadAt(context.Background(), src, obj, buf, off)
						got = append(got, buf[:n]...)
						if err == io.EOF {
							break
						}
						if err != nil {
							errs <- err
							return
						}
					}
					if !bytes.Equal(got, ref) {
						errs <- errors.New("reader " + itoa(int64(r)) + ": bytes differ from the source")
					}
				})
			}
			close(start)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitIdle(t, c)
			seen := map[int64]bool{}
			for _, r := range src.reqs() {
				if r.Off%testChunk != 0 || r.N != min(testChunk, obj.Size-r.Off) {
					t.Errorf("request %+v is not a whole chunk", r)
				}
				if seen[r.Off] {
					t.Errorf("chunk at %d fetched twice", r.Off)
				}
				seen[r.Off] = true
			}
			if want := (obj.Size + testChunk - 1) / testChunk; int64(len(seen)) != want {
				t.Errorf("%d chunks fetched, want %d", len(seen), want)
			}
			t.Logf("stats %+v", c.Stats())
		})
	}
}

// TestWaiterCancellationDoesNotCancelSharedFetch: the first reader's context is cancelled while
// the fetch it started is in progress; it returns promptly, the fetch goes on, and a second
// reader waiting on the same chunk gets the bytes from that single fetch.
func TestWaiterCancellationDoesNotCancelSharedFetch(t *testing.T) {
	src := newFakeSource()
	ref := pattern(3, 3*testChunk)
	obj := src.put("o", 3, ref)
	src.gate = make(chan struct{})
	src.started = make(chan request, 16)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})

	ctxA, cancelA := context.WithCancel(context.Background())
	errA := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(ctxA, src, obj, make([]byte, 100), 0)
		errA <- err
	}()
	<-src.started // the fill is now blocked in the source
	type result struct {
		p   []byte
		err error
	}
	resB := make(chan result, 1)
	go func() {
		p := make([]byte, 1000)
		_, err := c.ReadAt(context.Background(), src, obj, p, 500)
		resB <- result{p, err}
	}()
	for c.Stats().Misses < 2 { // B has looked up the chunk and is joining the fetch
		time.Sleep(time.Millisecond)
	}
	cancelA()
	if err := <-errA; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled reader: err %v, want context.Canceled", err)
	}
	src.mu.Lock()
	fetchCtx := src.ctxs[0]
	src.mu.Unlock()
	if fetchCtx.Err() != nil {
		t.Fatalf("shared fetch context was cancelled with the first waiter: %v", fetchCtx.Err())
	}
	close(src.gate)
	r := <-resB
	if r.err != nil {
		t.Fatalf("second reader: %v", r.err)
	}
	mustEqual(t, "second reader", r.p, ref[500:1500])
	if got := len(src.reqs()); got != 1 {
		t.Fatalf("%d requests, want 1 shared fetch", got)
	}
	// The cancelled reader's chunk is cached: reading it again needs no request.
	p := make([]byte, 100)
	if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "re-read", p, ref[:100])
	if got := len(src.reqs()); got != 1 {
		t.Fatalf("%d requests after re-read, want 1", got)
	}
}

// TestWaitersShareFetchError: readers waiting on one failing fetch all get its error, and the
// source sees one request.
func TestWaitersShareFetchError(t *testing.T) {
	src := newFakeSource()
	obj := src.put("o", 1, pattern(1, testChunk))
	src.gate = make(chan struct{})
	src.started = make(chan request, 16)
	src.mode = "err"
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
	errs := make(chan error, 8)
	go func() {
		_, err := c.ReadAt(context.Background(), src, obj, make([]byte, 10), 0)
		errs <- err
	}()
	<-src.started
	for range 7 {
		go func() {
			_, err := c.ReadAt(context.Background(), src, obj, make([]byte, 10), 0)
			errs <- err
		}()
	}
	for c.Stats().Misses < 8 {
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
	for range 8 {
		if err := <-errs; err == nil || !strings.Contains(err.Error(), "injected failure") {
			t.Fatalf("waiter: err %v, want the injected failure", err)
		}
	}
	if got := len(src.reqs()); got != 1 {
		t.Fatalf("%d requests for 8 waiters of one failing fetch, want 1", got)
	}
}

// TestEvictionKeepsBound reads many chunks through a small cache: bytes on disk never exceed
// MaxBytes and evicted chunks come back correctly.
func TestEvictionKeepsBound(t *testing.T) {
	src := newFakeSource()
	maxBytes := int64(6*testChunk + 3*4096)
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: maxBytes})
	var objs []Object
	var refs [][]byte
	for i := range 4 {
		ref := pattern(int64(10+i), 5*testChunk+int64(i)*777)
		objs = append(objs, src.put("o"+itoa(int64(i)), int64(10+i), ref))
		refs = append(refs, ref)
	}
	for round := range 3 {
		for i, obj := range objs {
			got := readAll(t, c, src, obj, 32<<10)
			mustEqual(t, "round "+itoa(int64(round))+" "+obj.Name, got, refs[i])
			waitIdle(t, c)
			st := c.Stats()
			if st.Bytes > maxBytes {
				t.Fatalf("Stats.Bytes %d > MaxBytes %d", st.Bytes, maxBytes)
			}
			if _, total := chunkFiles(t, c.root); total > maxBytes {
				t.Fatalf("chunk files total %d > MaxBytes %d", total, maxBytes)
			}
		}
	}
	st := c.Stats()
	if st.Evictions == 0 {
		t.Fatalf("no evictions: %+v", st)
	}
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
}

// TestChunkLargerThanCache: a cache smaller than one chunk still serves correct bytes, uncached.
func TestChunkLargerThanCache(t *testing.T) {
	src := newFakeSource()
	ref := pattern(2, 3*testChunk)
	obj := src.put("o", 2, ref)
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: testChunk / 2})
	mustEqual(t, "read", readAll(t, c, src, obj, 50000), ref)
	waitIdle(t, c)
	if st := c.Stats(); st.Chunks != 0 || st.Bytes != 0 {
		t.Fatalf("uncacheable chunks were cached: %+v", st)
	}
}

// TestRestartKeepsWarmChunks: Close and re-Open the same dir; everything read before is served
// without a request (and checksum-verified on first read).
func TestRestartKeepsWarmChunks(t *testing.T) {
	dir := t.TempDir()
	src := newFakeSource()
	ref := pattern(5, 9*testChunk+17)
	obj := src.put("warm", 5, ref)
	c, err := Open(Options{Dir: dir, ChunkSize: testChunk, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "first read", readAll(t, c, src, obj, 100000), ref)
	waitIdle(t, c)
	before := c.Stats()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	src.reset()
	c2 := openTest(t, Options{Dir: dir, ChunkSize: testChunk})
	if st := c2.Stats(); st.Chunks != before.Chunks || st.Bytes != before.Bytes {
		t.Fatalf("after restart %d chunks / %d bytes, before %d / %d", st.Chunks, st.Bytes, before.Chunks, before.Bytes)
	}
	mustEqual(t, "after restart", readAll(t, c2, src, obj, 100000), ref)
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("restart lost warm chunks: %d requests, first %+v", len(r), r[0])
	}
	if st := c2.Stats(); st.Misses != 0 || st.Hits == 0 {
		t.Fatalf("stats after warm re-read: %+v", st)
	}
}

// TestDamagedChunkIsDroppedAndRefetched covers damage found at read time (truncation while
// running) and at restart (truncation, flipped data byte, flipped header byte, bytes written by
// a fill that a crash cut short, a changed chunk size).
func TestDamagedChunkIsDroppedAndRefetched(t *testing.T) {
	ref := pattern(9, 2*testChunk)
	setup := func(t *testing.T) (string, *fakeSource, Object, string) {
		dir := t.TempDir()
		src := newFakeSource()
		obj := src.put("d", 9, ref)
		c, err := Open(Options{Dir: dir, ChunkSize: testChunk, Readahead: -1, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 10)
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		c.Close()
		paths, _ := chunkFiles(t, dir)
		if len(paths) != 1 {
			t.Fatalf("%d data files, want 1", len(paths))
		}
		src.reset()
		return dir, src, obj, paths[0]
	}
	idxOf := func(data string) string { return strings.TrimSuffix(data, ".data") + ".idx" }
	check := func(t *testing.T, c *Cache, src *fakeSource, obj Object, wantReqs int) {
		p := make([]byte, testChunk)
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "chunk 0", p, ref[:testChunk])
		if got := len(src.reqs()); got != wantReqs {
			t.Fatalf("%d requests, want %d", got, wantReqs)
		}
		// The refetched chunk is served from disk now.
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		if got := len(src.reqs()); got != wantReqs {
			t.Fatalf("%d requests after re-read, want %d", got, wantReqs)
		}
		waitIdle(t, c)
		if err := c.checkInvariants(true); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("truncated while running", func(t *testing.T) {
		dir, src, obj, path := setup(t)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if err := os.Truncate(path, 5000); err != nil {
			t.Fatal(err)
		}
		check(t, c, src, obj, 1)
		if c.Stats().Damaged != 1 {
			t.Fatalf("Damaged = %d, want 1", c.Stats().Damaged)
		}
		if fi, err := os.Stat(path); err != nil || fi.Size() != obj.Size {
			t.Fatalf("data file not rebuilt at the object's size: %v, %v", fi, err)
		}
	})
	t.Run("truncated before restart", func(t *testing.T) {
		dir, src, obj, path := setup(t)
		if err := os.Truncate(path, 5000); err != nil {
			t.Fatal(err)
		}
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if st := c.Stats(); st.Chunks != 0 {
			t.Fatalf("truncated data file was indexed: %+v", st)
		}
		check(t, c, src, obj, 1)
	})
	t.Run("data byte flipped before restart", func(t *testing.T) {
		dir, src, obj, path := setup(t)
		corrupt(t, path, testChunk-100)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		check(t, c, src, obj, 1)
		if c.Stats().Damaged != 1 {
			t.Fatalf("Damaged = %d, want 1", c.Stats().Damaged)
		}
	})
	t.Run("data byte flipped while running, read back from disk", func(t *testing.T) {
		// Bit rot under a running daemon: a unit this process wrote, out of memory and out of
		// the page cache, so the next read comes from the disk and must be checked.
		dir, src, obj, _ := setup(t)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		p := make([]byte, 10)
		if _, err := c.ReadAt(context.Background(), src, obj, p, testChunk); err != nil {
			t.Fatal(err) // chunk 1, written by this process
		}
		waitIdle(t, c)
		dropMemory(t, c)
		paths, _ := chunkFiles(t, dir)
		corrupt(t, paths[0], testChunk+100)
		evict(t, paths[0])
		src.reset()
		before := c.Stats().Damaged
		q := make([]byte, testChunk)
		if _, err := c.ReadAt(context.Background(), src, obj, q, testChunk); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "chunk 1", q, ref[testChunk:])
		if got := c.Stats().Damaged - before; got != 1 {
			t.Fatalf("Damaged went up by %d, want 1", got)
		}
		if got := len(src.reqs()); got != 1 {
			t.Fatalf("%d requests, want 1 (the damaged chunk refetched)", got)
		}
	})
	t.Run("written by this process, checked before passthrough", func(t *testing.T) {
		// Chunks are written around the page cache (O_DIRECT), so the kernel would read them
		// back from the disk: OpenWhole checks them first, in the background for a large
		// object (it refuses until that is done).
		for _, sync := range []bool{true, false} {
			src := newFakeSource()
			obj := src.put("w", 3, ref)
			opts := Options{ChunkSize: testChunk, Readahead: -1}
			if !sync {
				opts.syncCheck = testChunk
			}
			c := openTest(t, opts)
			p := make([]byte, len(ref))
			if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
				t.Fatal(err)
			}
			waitIdle(t, c)
			src.reset()
			w, ok := c.OpenWhole(obj)
			if ok != sync {
				t.Fatalf("checked before answering: %v; OpenWhole granted the view at once: %v", sync, ok)
			}
			if !ok {
				w = waitWhole(t, c, obj)
			}
			w.Close()
			if st := c.Stats(); st.Damaged != 0 || len(src.reqs()) != 0 {
				t.Fatalf("Damaged = %d, %d requests; want 0 and 0", st.Damaged, len(src.reqs()))
			}
		}
		src := newFakeSource()
		c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
		// A small object is written through the page cache (less than a page cannot go
		// around it): bytes still there are the bytes written, granted at once.
		small := pattern(5, 1000)
		sobj := src.put("small", 5, small)
		if _, err := c.ReadAt(context.Background(), src, sobj, make([]byte, 1000), 0); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, c)
		w, ok := c.OpenWhole(sobj)
		if !ok {
			t.Fatal("OpenWhole refused a small object this process wrote and still holds in the page cache")
		}
		w.Close()
	})
	t.Run("written by this process, damaged, then whole", func(t *testing.T) {
		// The background check of OpenWhole finds the damage: the unit is dropped, the next
		// read refetches it, and only then is the object granted.
		src := newFakeSource()
		obj := src.put("e", 4, ref)
		dir := t.TempDir()
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		p := make([]byte, len(ref))
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, c)
		dropMemory(t, c)
		paths, _ := chunkFiles(t, dir)
		corrupt(t, paths[0], 5)
		evict(t, paths[0])
		if w, ok := c.OpenWhole(obj); ok {
			w.Close()
			t.Fatal("OpenWhole granted units read back from disk before they were checked")
		}
		for deadline := time.Now().Add(10 * time.Second); c.Stats().Damaged == 0; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the background check did not find the damaged chunk in 10 s")
			}
		}
		src.reset()
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "object", p, ref)
		if got := len(src.reqs()); got != 1 {
			t.Fatalf("%d requests, want 1 (only the damaged chunk refetched)", got)
		}
		waitIdle(t, c)
		waitWhole(t, c, obj).Close()
	})
	t.Run("header byte flipped before restart", func(t *testing.T) {
		dir, src, obj, path := setup(t)
		corrupt(t, idxOf(path), 20)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if st := c.Stats(); st.Chunks != 0 {
			t.Fatalf("object with a damaged header was indexed: %+v", st)
		}
		if _, err := os.Stat(idxOf(path)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("damaged file still there: %v", err)
		}
		check(t, c, src, obj, 1)
	})
	t.Run("record byte flipped before restart", func(t *testing.T) {
		dir, src, obj, path := setup(t)
		ix, err := os.Open(idxOf(path))
		if err != nil {
			t.Fatal(err)
		}
		h, err := readHeader(ix)
		ix.Close()
		if err != nil {
			t.Fatal(err)
		}
		corrupt(t, idxOf(path), h.len()+5)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if st := c.Stats(); st.Chunks != 0 {
			t.Fatalf("unit with a damaged record was indexed: %+v", st)
		}
		check(t, c, src, obj, 1)
	})
	t.Run("fill cut short by a crash", func(t *testing.T) {
		// Bytes of chunk 1 written, its record not: they are released at Open, and chunk 0
		// is still served from disk.
		dir, src, obj, path := setup(t)
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(ref[testChunk:testChunk+30000], testChunk); err != nil {
			t.Fatal(err)
		}
		f.Close()
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if _, total := chunkFiles(t, dir); total > c.Stats().Bytes {
			t.Fatalf("files occupy %d bytes, %d accounted: the partial fill was not released", total, c.Stats().Bytes)
		}
		check(t, c, src, obj, 0)
	})
	t.Run("chunk size changed", func(t *testing.T) {
		dir, src, obj, _ := setup(t)
		c := openTest(t, Options{Dir: dir, ChunkSize: 2 * testChunk, Readahead: -1})
		if st := c.Stats(); st.Chunks != 0 {
			t.Fatalf("chunk of another chunk size was indexed: %+v", st)
		}
		p := make([]byte, 2*testChunk)
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "read", p, ref)
	})
	t.Run("files of an older version", func(t *testing.T) {
		dir, src, obj, _ := setup(t)
		old := filepath.Join(dir, "v1", "ab", "chunk")
		if err := os.MkdirAll(filepath.Dir(old), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(old, []byte("old chunk"), 0o600); err != nil {
			t.Fatal(err)
		}
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if _, err := os.Stat(filepath.Join(dir, "v1")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("old layout still there: %v", err)
		}
		check(t, c, src, obj, 0)
	})
}

// TestNewGenerationNeverServesOldBytes: a new generation of an object is read from the source
// even though the old one is fully cached, and the old one still reads as itself.
func TestNewGenerationNeverServesOldBytes(t *testing.T) {
	src := newFakeSource()
	old := pattern(100, 3*testChunk+5)
	objOld := src.put("same", 100, old)
	c := openTest(t, Options{ChunkSize: testChunk})
	mustEqual(t, "gen 100", readAll(t, c, src, objOld, 40000), old)
	waitIdle(t, c)
	src.reset()
	newer := pattern(101, 2*testChunk+9)
	objNew := src.put("same", 101, newer)
	mustEqual(t, "gen 101", readAll(t, c, src, objNew, 40000), newer)
	waitIdle(t, c)
	for _, r := range src.reqs() {
		if r.Gen != 101 {
			t.Fatalf("request for generation %d while reading 101", r.Gen)
		}
	}
	if len(src.reqs()) == 0 {
		t.Fatal("generation 101 was served without fetching it")
	}
	src.reset()
	mustEqual(t, "gen 100 again", readAll(t, c, src, objOld, 40000), old)
	if len(src.reqs()) != 0 {
		t.Fatalf("gen 100 refetched: %+v", src.reqs())
	}
	c.Invalidate("bkt", "same")
	if st := c.Stats(); st.Chunks != 0 || st.Bytes != 0 {
		t.Fatalf("after Invalidate: %+v", st)
	}
	if paths, _ := chunkFiles(t, c.root); len(paths) != 0 {
		t.Fatalf("after Invalidate %d chunk files remain", len(paths))
	}
}

// TestSecondOpenFails: a locked cache dir cannot be opened again until the holder closes it.
func TestSecondOpenFails(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: dir, Logger: testLogger(t)})
	if err == nil {
		t.Fatal("second Open of a locked dir succeeded")
	}
	for _, want := range []string{"in use", "pid " + itoa(int64(os.Getpid())), dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c2, err := Open(Options{Dir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	c2.Close()
}

// TestFillThenReadNeedsNoFetch: chunks stored from a local copy serve reads without requests.
func TestFillThenReadNeedsNoFetch(t *testing.T) {
	src := newFakeSource()
	ref := pattern(42, 4*testChunk+100)
	obj := src.put("up", 42, ref)
	c := openTest(t, Options{ChunkSize: testChunk})
	if err := c.Fill(obj, bytes.NewReader(ref)); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "read after Fill", readAll(t, c, src, obj, 30000), ref)
	waitIdle(t, c)
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("%d requests after Fill, want 0", len(r))
	}
	if err := c.Fill(obj, bytes.NewReader(ref[:len(ref)-1])); !errors.Is(err, ErrShortBody) {
		t.Fatalf("Fill from a short copy: %v, want ErrShortBody", err)
	}
	if err := c.Fill(obj, bytes.NewReader(append(bytes.Clone(ref), 1))); err == nil {
		t.Fatal("Fill from a long copy succeeded")
	}
	// The failed fills left the good chunks alone.
	mustEqual(t, "read after failed Fill", readAll(t, c, src, obj, 30000), ref)
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("%d requests after failed Fill, want 0", len(r))
	}
}

// TestWrongBodyLengthIsAnError: a short or over-long body (decompressive transcoding) fails the
// read and caches nothing.
func TestWrongBodyLengthIsAnError(t *testing.T) {
	for _, tc := range []struct {
		mode string
		want error
	}{
		{"short", ErrShortBody},
		{"long", ErrLongBody},
	} {
		for _, pol := range policies {
			t.Run(tc.mode+"/"+pol.name, func(t *testing.T) {
				src := newFakeSource()
				ref := pattern(8, 6*testChunk)
				obj := src.put("z", 8, ref)
				src.mode = tc.mode
				c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1, randomPolicy: pol.policy, blockSize: 4096})
				for _, off := range []int64{0, 3*testChunk + 5000} {
					_, err := c.ReadAt(context.Background(), src, obj, make([]byte, 100), off)
					if !errors.Is(err, tc.want) {
						t.Fatalf("ReadAt at %d: %v, want %v", off, err, tc.want)
					}
				}
				if st := c.Stats(); st.Chunks != 0 {
					t.Fatalf("bad bodies were cached: %+v", st)
				}
				if paths, _ := chunkFiles(t, c.root); len(paths) != 0 {
					t.Fatalf("bad bodies left files: %v", paths)
				}
				src.mode = ""
				p := make([]byte, 100)
				if _, err := c.ReadAt(context.Background(), src, obj, p, 3*testChunk+5000); err != nil {
					t.Fatal(err)
				}
				mustEqual(t, "after fix", p, ref[3*testChunk+5000:3*testChunk+5100])
			})
		}
	}
}

// TestSequentialReadahead: a sequential reader gets the next chunks fetched ahead of it, in a
// window that starts at one chunk and doubles when the reader had to wait for bytes in the chunk
// it leaves, and stays when it did not (nextWindow); a random reader gets none.
func TestSequentialReadahead(t *testing.T) {
	src := newFakeSource()
	ref := pattern(4, 20*testChunk)
	obj := src.put("seq", 4, ref)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: 3})
	p := make([]byte, 4096)
	fetched := func() map[int64]bool {
		waitIdle(t, c)
		got := map[int64]bool{}
		for _, r := range src.reqs() {
			got[r.Off/testChunk] = true
		}
		return got
	}
	if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
		t.Fatal(err)
	}
	if got := fetched(); len(got) != 2 || !got[0] || !got[1] {
		t.Fatalf("after a read at 0: fetched chunks %v, want 0 and 1 (window 1)", got)
	}
	// Reading on into chunk 1 (the reader waited for chunk 0) doubles the window: chunks 2 and 3
	// follow.
	for off := int64(4096); off < testChunk+4096; off += 4096 {
		if _, err := c.ReadAt(context.Background(), src, obj, p, off); err != nil {
			t.Fatal(err)
		}
	}
	if got := fetched(); len(got) != 4 || !got[2] || !got[3] {
		t.Fatalf("after reading into chunk 1: fetched chunks %v, want 0..3 (window 2)", got)
	}
	// Chunk 1 was there before the reader: it did not wait, so entering chunk 2 keeps the
	// window at 2: chunk 4 follows (3 is there already).
	for off := int64(testChunk + 4096); off < 2*testChunk+4096; off += 4096 {
		if _, err := c.ReadAt(context.Background(), src, obj, p, off); err != nil {
			t.Fatal(err)
		}
	}
	if got := fetched(); len(got) != 5 || !got[4] {
		t.Fatalf("after reading into chunk 2: fetched chunks %v, want 0..4 (window 2)", got)
	}
	// A single read far away is not sequential: exactly one request, no readahead.
	src.reset()
	if _, err := c.ReadAt(context.Background(), src, obj, p, 15*testChunk+100); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, c)
	if r := src.reqs(); len(r) != 1 {
		t.Fatalf("random read made %d requests, want 1: %+v", len(r), r)
	}
	mustEqual(t, "random read", p, ref[15*testChunk+100:15*testChunk+100+4096])
}

// TestRandomReadFetchesBlocks: with the adaptive policy, a random small read of a cold chunk
// fetches one block, not the chunk; after escalateAfter cached blocks, the whole chunk follows.
func TestRandomReadFetchesBlocks(t *testing.T) {
	src := newFakeSource()
	ref := pattern(6, 10*testChunk)
	obj := src.put("rnd", 6, ref)
	const bs = 4096
	c := openTest(t, Options{ChunkSize: testChunk, blockSize: bs})
	read := func(off int64) {
		t.Helper()
		p := make([]byte, 100)
		if _, err := c.ReadAt(context.Background(), src, obj, p, off); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "read at "+itoa(off), p, ref[off:off+100])
		waitIdle(t, c)
	}
	base := int64(5 * testChunk)
	// Reads more than a quarter chunk apart do not look like a stream.
	read(base + 1*bs + 7)
	if r := src.reqs(); len(r) != 1 || r[0].N != bs || r[0].Off != base+1*bs {
		t.Fatalf("first random read: requests %+v, want one %d-byte block at %d", r, bs, base+1*bs)
	}
	read(base + 6*bs) // second block of the chunk: still blocks
	read(base + 11*bs + 50)
	var whole bool
	for _, r := range src.reqs() {
		whole = whole || (r.Off == base && r.N == testChunk)
	}
	if !whole || len(src.reqs()) != 4 {
		t.Fatalf("third random miss in a chunk: requests %+v, want 3 blocks and the whole chunk", src.reqs())
	}
	src.reset()
	read(base + 14*bs) // served by the now cached chunk
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("read in an escalated chunk made requests %+v", r)
	}
}

// TestClosedCache: reads after Close fail clearly, and Close is idempotent.
func TestClosedCache(t *testing.T) {
	src := newFakeSource()
	obj := src.put("c", 1, pattern(1, 100))
	c := openTest(t, Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ReadAt(context.Background(), src, obj, make([]byte, 1), 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadAt after Close: %v", err)
	}
	if err := c.Fill(obj, bytes.NewReader(pattern(1, 100))); !errors.Is(err, ErrClosed) {
		t.Fatalf("Fill after Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCloseCancelsFetches: Close does not hang on a stuck source; it cancels the fetch.
func TestCloseCancelsFetches(t *testing.T) {
	src := newFakeSource()
	obj := src.put("stuck", 1, pattern(1, 3*testChunk))
	src.gate = make(chan struct{}) // never opened
	src.started = make(chan request, 16)
	c := openTest(t, Options{ChunkSize: testChunk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := c.ReadAt(ctx, src, obj, make([]byte, 10), 0)
		done <- err
	}()
	<-src.started
	cancel()
	<-done
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.FetchesInFlight != 0 {
		t.Fatalf("fetches still in flight after Close: %+v", st)
	}
}

func TestBadArguments(t *testing.T) {
	src := newFakeSource()
	obj := src.put("a", 1, pattern(1, 10))
	c := openTest(t, Options{})
	for _, tc := range []struct {
		name string
		obj  Object
		off  int64
	}{
		{"generation 0", Object{Bucket: "bkt", Name: "a", Size: 10}, 0},
		{"negative offset", obj, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.ReadAt(context.Background(), src, tc.obj, make([]byte, 1), tc.off); err == nil || err == io.EOF {
				t.Fatalf("err %v, want a clear error", err)
			}
		})
	}
	if _, err := Open(Options{}); err == nil || !strings.Contains(err.Error(), "Dir") {
		t.Fatalf("Open without Dir: %v", err)
	}
	if n, err := c.ReadAt(context.Background(), src, obj, nil, 100); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
	if n, err := c.ReadAt(context.Background(), src, obj, make([]byte, 3), 10); n != 0 || err != io.EOF {
		t.Fatalf("read at EOF: %d, %v", n, err)
	}
}

// TestFetchTimeout: a source that never answers fails the read with a deadline error after
// FetchTimeout, for every waiter, and nothing is cached.
func TestFetchTimeout(t *testing.T) {
	src := newFakeSource()
	obj := src.put("slow", 1, pattern(1, testChunk))
	src.gate = make(chan struct{}) // never opened
	c := openTest(t, Options{ChunkSize: testChunk, FetchTimeout: 50 * time.Millisecond})
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			_, err := c.ReadAt(context.Background(), src, obj, make([]byte, 10), 0)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("ReadAt of a stuck source: %v, want DeadlineExceeded", err)
			}
		})
	}
	wg.Wait()
	if st := c.Stats(); st.Chunks != 0 {
		t.Fatalf("stuck fetch cached something: %+v", st)
	}
}

// TestFillIsBoundedToHalfTheCache: Fill of an object larger than MaxBytes/2 stores its first
// chunks only; the rest is fetched on demand.
func TestFillIsBoundedToHalfTheCache(t *testing.T) {
	src := newFakeSource()
	ref := pattern(11, 10*testChunk)
	obj := src.put("huge", 11, ref)
	maxBytes := int64(8 * (testChunk + 4096))
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: maxBytes, Readahead: -1})
	if err := c.Fill(obj, bytes.NewReader(ref)); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Bytes > maxBytes/2 || st.Chunks != 4 {
		t.Fatalf("after Fill: %+v, want the first 4 chunks within %d bytes", st, maxBytes/2)
	}
	mustEqual(t, "read", readAll(t, c, src, obj, 50000), ref)
	for _, r := range src.reqs() {
		if r.Off < 4*testChunk {
			t.Fatalf("filled chunk fetched: %+v", r)
		}
	}
}

// TestReopenWithSmallerBound: re-indexing evicts down to a smaller MaxBytes, least recently
// filled first.
func TestReopenWithSmallerBound(t *testing.T) {
	dir := t.TempDir()
	src := newFakeSource()
	ref := pattern(12, 8*testChunk)
	obj := src.put("shrink", 12, ref)
	c, err := Open(Options{Dir: dir, ChunkSize: testChunk, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range int64(8) { // fill chunk by chunk, so modification times follow the index
		if _, err := c.ReadAt(context.Background(), src, obj, make([]byte, 1), i*testChunk+100); err != nil {
			t.Fatal(err)
		}
		waitIdle(t, c)
		time.Sleep(10 * time.Millisecond)
	}
	c.Close()
	maxBytes := int64(3 * (testChunk + 4096))
	c2 := openTest(t, Options{Dir: dir, ChunkSize: testChunk, MaxBytes: maxBytes, Readahead: -1})
	st := c2.Stats()
	if st.Bytes > maxBytes || st.Chunks != 3 {
		t.Fatalf("after reopen: %+v, want 3 chunks within %d bytes", st, maxBytes)
	}
	if _, total := chunkFiles(t, dir); total > maxBytes {
		t.Fatalf("chunk files total %d > %d after reopen", total, maxBytes)
	}
	src.reset()
	p := make([]byte, 3*testChunk)
	if _, err := c2.ReadAt(context.Background(), src, obj, p, 5*testChunk); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "newest chunks", p, ref[5*testChunk:])
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("the most recently filled chunks were evicted: %+v", r)
	}
}

// TestNextWindow walks the prefetch policy through its cases: a reader that waits doubles its
// window up to the bound; one that does not keeps it.
func TestNextWindow(t *testing.T) {
	w := &windowState{size: 1}
	step := func(waited bool) int {
		w.waited = waited
		return nextWindow(w, 6)
	}
	for i, c := range []struct {
		waited bool
		want   int
	}{{true, 2}, {false, 2}, {true, 4}, {false, 4}, {true, 6}, {true, 6}, {false, 6}} {
		if got := step(c.waited); got != c.want {
			t.Fatalf("step %d (waited %v): window %d, want %d", i, c.waited, got, c.want)
		}
	}
}

// TestForwardSkipKeepsStream: a reader of an established stream that skips a few MiB forward
// (within half a chunk) keeps its stream and its window; a reader that has not established one
// is told apart from random reads within maxSeqWindow, as before.
func TestForwardSkipKeepsStream(t *testing.T) {
	const cs = 8 << 20
	c := openTest(t, Options{ChunkSize: cs})
	obj := Object{Bucket: "b", Name: "skip", Generation: 1, Size: 64 << 20}
	for off := int64(0); off < 2*cs; off += 1 << 20 {
		c.observe(obj, off, off+1<<20)
	}
	_, before, w := c.observe(obj, 2*cs, 2*cs+1<<20)
	w.win.waited = true
	seq, after, _ := c.observe(obj, 2*cs+4<<20, 2*cs+5<<20) // 3 MiB skipped
	if !seq || after < before {
		t.Fatalf("after a 3 MiB skip: seq %v, window %d (was %d), want the stream kept", seq, after, before)
	}
	// A new reader 2 MiB past another's start is not taken for a stream.
	if seq, _, _ := c.observe(obj, 40<<20, 40<<20+4096); seq {
		t.Fatal("a read far from every stream counted as sequential")
	}
	if seq, _, _ := c.observe(obj, 42<<20, 42<<20+4096); seq {
		t.Fatal("a second read 2 MiB further counted as sequential: random readers look sequential")
	}
}
