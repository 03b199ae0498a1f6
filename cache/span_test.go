package cache

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
)

// spanBytes reads a span's bytes both ways a FUSE server does: pread on its descriptor (what
// splice and go-fuse's fallback use) and Span.ReadAt. Both must agree.
func spanBytes(t *testing.T, s *Span) []byte {
	t.Helper()
	viaFd := make([]byte, s.Len)
	if n, err := syscall.Pread(int(s.Fd()), viaFd, s.Off); err != nil || n != s.Len {
		t.Fatalf("pread of span: %d bytes, %v", n, err)
	}
	viaRead := make([]byte, s.Len)
	if n, err := s.ReadAt(viaRead); n != s.Len {
		t.Fatalf("Span.ReadAt: %d bytes, %v", n, err)
	}
	mustEqual(t, "Span.ReadAt vs pread", viaRead, viaFd)
	return viaFd
}

// warm reads all of obj through ReadAt so that its chunks are cached.
func warm(t *testing.T, c *Cache, src Source, obj Object) {
	t.Helper()
	readAll(t, c, src, obj, testChunk)
	waitIdle(t, c)
}

func TestCachedSpan(t *testing.T) {
	src := newFakeSource()
	ref := pattern(3, 3*testChunk+100)
	obj := src.put("s", 3, ref)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
	if _, ok := c.CachedSpan(src, obj, 0, 4096); ok {
		t.Fatal("span of a cold object")
	}
	warm(t, c, src, obj)
	src.reset()
	hits := c.Stats().Hits
	cases := []struct {
		name   string
		off    int64
		n      int
		ok     bool
		length int
	}{
		{"start of chunk", 0, 4096, true, 4096},
		{"middle of chunk", testChunk + 1000, 5000, true, 5000},
		{"whole chunk", 2 * testChunk, testChunk, true, testChunk},
		{"clipped at end", 3*testChunk + 50, 4096, true, 50},
		{"crosses chunk boundary", testChunk - 10, 20, false, 0},
		{"at end", 3*testChunk + 100, 10, false, 0},
		{"negative offset", -1, 10, false, 0},
		{"empty", 10, 0, false, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ok := c.CachedSpan(src, obj, tc.off, tc.n)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if !ok {
				return
			}
			defer s.Release()
			if s.Len != tc.length {
				t.Fatalf("Len = %d, want %d", s.Len, tc.length)
			}
			mustEqual(t, "span", spanBytes(t, s), ref[tc.off:tc.off+int64(tc.length)])
			s.Release() // idempotent
		})
	}
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("spans of cached chunks sent %d requests", len(r))
	}
	if got := c.Stats().Hits - hits; got != 4 {
		t.Fatalf("%d hits counted, want 4", got)
	}
	// Another generation of the same object is never served from these files.
	newer := obj
	newer.Generation = 4
	if _, ok := c.CachedSpan(src, newer, 0, 4096); ok {
		t.Fatal("span of generation 4 served from generation 3's chunk")
	}
}

// TestSpanSurvivesEviction: a Span taken before its chunk is evicted (and its file removed)
// still reads the right bytes, and the descriptor is closed once released.
func TestSpanSurvivesEviction(t *testing.T) {
	src := newFakeSource()
	refA := pattern(7, 2*testChunk)
	a := src.put("a", 7, refA)
	b := src.put("b", 8, pattern(8, 4*testChunk))
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: 3*testChunk + 3*4096, Readahead: -1})
	warm(t, c, src, a)
	s, ok := c.CachedSpan(src, a, 100, 1000)
	if !ok {
		t.Fatal("no span of a cached chunk")
	}
	warm(t, c, src, b) // evicts every chunk of a
	c.mu.Lock()
	_, still := c.lru.Peek(c.chunkKey(a, 0))
	c.mu.Unlock()
	if still {
		t.Fatal("chunk 0 of a was not evicted")
	}
	paths, _ := chunkFiles(t, c.root)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && fi.Size() == 0 {
			t.Fatalf("empty chunk file %s", p)
		}
	}
	mustEqual(t, "span after eviction", spanBytes(t, s), refA[100:1100])
	fd := int(s.Fd())
	s.Release()
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err == nil {
		// The number may have been reused by another open file, but not by the removed chunk.
		if st.Nlink == 0 {
			t.Fatal("descriptor of an evicted, released chunk file is still open")
		}
	}
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
}

// TestSpanNeverServesDamage: a chunk file re-indexed at restart is not served through a span
// until ReadAt has verified its checksum, a damaged one is dropped by that read and refetched,
// and a file truncated while running is dropped by CachedSpan itself.
func TestSpanNeverServesDamage(t *testing.T) {
	ref := pattern(11, 2*testChunk)
	t.Run("restart", func(t *testing.T) {
		dir := t.TempDir()
		src := newFakeSource()
		obj := src.put("d", 11, ref)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		warm(t, c, src, obj)
		c.Close()
		c2 := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if _, ok := c2.CachedSpan(src, obj, 0, 100); ok {
			t.Fatal("span of an unverified chunk after restart")
		}
		p := make([]byte, 100)
		if _, err := c2.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		s, ok := c2.CachedSpan(src, obj, 0, 100)
		if !ok {
			t.Fatal("no span of a verified chunk")
		}
		defer s.Release()
		mustEqual(t, "span after restart", spanBytes(t, s), ref[:100])
	})
	t.Run("data byte flipped before restart", func(t *testing.T) {
		dir := t.TempDir()
		src := newFakeSource()
		obj := src.put("d", 11, ref)
		c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		p := make([]byte, 10)
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		c.Close()
		paths, _ := chunkFiles(t, dir)
		if len(paths) != 1 {
			t.Fatalf("%d chunk files, want 1", len(paths))
		}
		fi, _ := os.Stat(paths[0])
		corrupt(t, paths[0], fi.Size()-100)
		c2 := openTest(t, Options{Dir: dir, ChunkSize: testChunk, Readahead: -1})
		if _, ok := c2.CachedSpan(src, obj, testChunk-200, 200); ok {
			t.Fatal("span of a damaged, unverified chunk")
		}
		got := make([]byte, 200)
		if _, err := c2.ReadAt(context.Background(), src, obj, got, testChunk-200); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "read", got, ref[testChunk-200:testChunk])
		if c2.Stats().Damaged != 1 {
			t.Fatalf("Damaged = %d, want 1", c2.Stats().Damaged)
		}
		s, ok := c2.CachedSpan(src, obj, testChunk-200, 200)
		if !ok {
			t.Fatal("no span of the refetched chunk")
		}
		defer s.Release()
		mustEqual(t, "span of refetched chunk", spanBytes(t, s), ref[testChunk-200:testChunk])
	})
	t.Run("truncated while running", func(t *testing.T) {
		src := newFakeSource()
		obj := src.put("d", 11, ref)
		c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
		p := make([]byte, 10)
		if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
			t.Fatal(err)
		}
		paths, _ := chunkFiles(t, c.root)
		if len(paths) != 1 {
			t.Fatalf("%d chunk files, want 1", len(paths))
		}
		// The file is open in the open-file table already; truncation must still be seen.
		if err := os.Truncate(paths[0], 5000); err != nil {
			t.Fatal(err)
		}
		if _, ok := c.CachedSpan(src, obj, 0, 100); ok {
			t.Fatal("span of a truncated chunk")
		}
		if c.Stats().Damaged != 1 {
			t.Fatalf("Damaged = %d, want 1", c.Stats().Damaged)
		}
		if _, err := os.Stat(paths[0]); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("truncated chunk file still there: %v", err)
		}
		got := make([]byte, testChunk)
		if _, err := c.ReadAt(context.Background(), src, obj, got, 0); err != nil {
			t.Fatal(err)
		}
		mustEqual(t, "refetched", got, ref[:testChunk])
	})
}

// TestOpenFilesAreBounded: reading more chunks than maxOpenFiles keeps at most maxOpenFiles
// chunk files open in the table, and Close releases them all.
func TestOpenFilesAreBounded(t *testing.T) {
	src := newFakeSource()
	const chunk = 4096
	ref := pattern(2, (maxOpenFiles+20)*chunk)
	obj := src.put("many", 2, ref)
	c := openTest(t, Options{ChunkSize: chunk, Readahead: -1})
	mustEqual(t, "read", readAll(t, c, src, obj, chunk), ref)
	c.mu.Lock()
	n := c.open.Len()
	var handles []*handle
	for _, p := range c.open.Keys() {
		h, _ := c.open.Peek(p)
		handles = append(handles, h)
	}
	c.mu.Unlock()
	if n != maxOpenFiles {
		t.Fatalf("%d chunk files open, want %d", n, maxOpenFiles)
	}
	waitIdle(t, c)
	c.Close()
	for _, h := range handles {
		if got := h.refs.Load(); got != 0 {
			t.Fatalf("open chunk file has %d references after Close", got)
		}
	}
}

// TestCachedSpanOfBlock: a range inside a cached random-read block (its chunk not cached) is
// served from the block's file, at the right offset.
func TestCachedSpanOfBlock(t *testing.T) {
	src := newFakeSource()
	ref := pattern(6, 10*testChunk)
	obj := src.put("rnd", 6, ref)
	const bs = 4096
	c := openTest(t, Options{ChunkSize: testChunk, blockSize: bs, Readahead: -1})
	off := int64(5*testChunk + 3*bs + 7)
	p := make([]byte, 100)
	if _, err := c.ReadAt(context.Background(), src, obj, p, off); err != nil {
		t.Fatal(err)
	}
	waitIdle(t, c)
	src.reset()
	s, ok := c.CachedSpan(src, obj, off+10, 200)
	if !ok {
		t.Fatal("no span of a cached block")
	}
	defer s.Release()
	mustEqual(t, "span of block", spanBytes(t, s), ref[off+10:off+210])
	if _, ok := c.CachedSpan(src, obj, off+bs, 10); ok {
		t.Fatal("span of the next, uncached block")
	}
	if r := src.reqs(); len(r) != 0 {
		t.Fatalf("spans made requests %+v", r)
	}
}
