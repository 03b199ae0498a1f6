package cache

import (
	"context"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestOpenWhole: a pinned view exists only once every byte is cached (by chunks or by blocks),
// it reads as the object, and it keeps its bytes while eviction takes its units; they are
// released at Close.
func TestOpenWhole(t *testing.T) {
	src := newFakeSource()
	ref := pattern(21, 4*testChunk+999)
	obj := src.put("whole", 21, ref)
	other := pattern(22, 6*testChunk)
	objOther := src.put("other", 22, other)
	maxBytes := int64(6*testChunk + 4*4096)
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: maxBytes, Readahead: -1})

	if _, ok := c.OpenWhole(obj); ok {
		t.Fatal("OpenWhole of an uncached object")
	}
	if _, err := c.ReadAt(context.Background(), src, obj, make([]byte, 2*testChunk), 0); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.OpenWhole(obj); ok {
		t.Fatal("OpenWhole of a half-cached object")
	}
	mustEqual(t, "read", readAll(t, c, src, obj, 100000), ref)
	waitIdle(t, c)            // the last chunks reach the disk behind the reader
	w := waitWhole(t, c, obj) // once their check behind OpenWhole is done
	stale := obj
	stale.Generation++
	if _, ok := c.OpenWhole(stale); ok {
		t.Fatal("OpenWhole of another generation")
	}
	got, err := io.ReadAll(w.File())
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "whole file", got, ref)

	// Reading another object evicts every unit of the pinned one; its bytes stay.
	mustEqual(t, "other", readAll(t, c, src, objOther, 100000), other)
	waitIdle(t, c)
	if c.Stats().Evictions == 0 {
		t.Fatal("nothing evicted")
	}
	got = make([]byte, len(ref))
	if _, err := w.File().ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "whole file after eviction", got, ref)
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close() // idempotent
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
	if _, total := chunkFiles(t, c.root); total > maxBytes {
		t.Fatalf("cache files occupy %d bytes after unpin, bound %d", total, maxBytes)
	}
	mustEqual(t, "read after unpin", readAll(t, c, src, obj, 100000), ref)
}

// TestOpenWholeFromBlocks: an object cached by random-read blocks only is whole too.
func TestOpenWholeFromBlocks(t *testing.T) {
	src := newFakeSource()
	ref := pattern(23, 3*testChunk+5000)
	obj := src.put("blocks", 23, ref)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1, randomPolicy: policyBlock, blockSize: 4096})
	// Fetch block by block (a read through ReadAt would see a stream and take whole chunks).
	readBlock := func(i int64) {
		t.Helper()
		k := key{Bucket: obj.Bucket, Name: obj.Name, Gen: obj.Generation, Unit: 4096, Index: i}
		if err := c.readUnit(context.Background(), src, obj, k, make([]byte, k.length(obj.Size)), 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := int64(1); i*4096 < obj.Size; i++ {
		readBlock(i)
	}
	if _, ok := c.OpenWhole(obj); ok {
		t.Fatal("OpenWhole with block 0 missing")
	}
	readBlock(0)
	if st := c.Stats(); st.Chunks != int(ceilDiv(obj.Size, 4096)) {
		t.Fatalf("%d units cached, want only blocks", st.Chunks)
	}
	w := waitWhole(t, c, obj) // blocks, too, are written around the page cache: checked first
	defer w.Close()
	got, err := io.ReadAll(w.File())
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "whole file", got, ref)
}

// TestConcurrentReadsUnderEviction: readers of overlapping ranges of several objects through a
// cache far smaller than the data, so units are evicted and punched while others read the same
// files. Every byte read must be right (run with -race).
func TestConcurrentReadsUnderEviction(t *testing.T) {
	for _, pol := range policies {
		t.Run(pol.name, func(t *testing.T) {
			src := newFakeSource()
			var objs []Object
			var refs [][]byte
			for i := range 3 {
				ref := pattern(int64(30+i), 5*testChunk+int64(i)*3333)
				objs = append(objs, src.put("c"+itoa(int64(i)), int64(30+i), ref))
				refs = append(refs, ref)
			}
			maxBytes := int64(4*testChunk + 8*4096)
			c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: maxBytes, randomPolicy: pol.policy, blockSize: 4096})
			var wg sync.WaitGroup
			for r := range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(r), 77))
					for range 150 {
						i := rng.IntN(len(objs))
						off := rng.Int64N(objs[i].Size)
						n := 1 + rng.IntN(2*testChunk)
						if rng.IntN(2) == 0 {
							n = 1 + rng.IntN(9000)
						}
						p := make([]byte, n)
						got, err := c.ReadAt(context.Background(), src, objs[i], p, off)
						if err != nil && err != io.EOF {
							t.Error(err)
							return
						}
						want := refs[i][off:min(off+int64(n), objs[i].Size)]
						if string(p[:got]) != string(want) {
							t.Errorf("%s at %d (+%d): wrong bytes", objs[i].Name, off, n)
							return
						}
						if r == 0 && rng.IntN(20) == 0 {
							if w, ok := c.OpenWhole(objs[i]); ok {
								all, err := io.ReadAll(w.File())
								w.Close()
								if err != nil || string(all) != string(refs[i]) {
									t.Errorf("whole %s: wrong bytes (%v)", objs[i].Name, err)
									return
								}
							}
						}
					}
				}()
			}
			wg.Wait()
			waitIdle(t, c)
			if err := c.checkInvariants(true); err != nil {
				t.Fatal(err)
			}
			if files, total := chunkFiles(t, c.root); total > maxBytes {
				for _, f := range files {
					var st syscall.Stat_t
					syscall.Stat(f, &st)
					var ist syscall.Stat_t
					syscall.Stat(strings.TrimSuffix(f, ".data")+".idx", &ist)
					t.Logf("%s: %d allocated, idx %d", f, st.Blocks*512, ist.Blocks*512)
				}
				c.mu.Lock()
				for _, k := range c.lru.Keys() {
					t.Logf("unit %s %d/%d", k.Name, k.Unit, k.Index)
				}
				c.mu.Unlock()
				t.Fatalf("cache files occupy %d bytes, bound %d (stats %+v)", total, maxBytes, c.Stats())
			}
			if c.Stats().Evictions == 0 {
				t.Fatal("no evictions")
			}
		})
	}
}

// TestReadSpan: sequential reads come back as spans of the data file holding the right bytes,
// which stay there until Close while other readers evict (run with -race); other reads are
// copied as ReadAt does.
func TestReadSpan(t *testing.T) {
	src := newFakeSource()
	var objs []Object
	var refs [][]byte
	for i := range 3 {
		ref := pattern(int64(40+i), 4*testChunk+int64(i)*1234)
		objs = append(objs, src.put("s"+itoa(int64(i)), int64(40+i), ref))
		refs = append(refs, ref)
	}
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: 3*testChunk + 4*4096})
	var wg sync.WaitGroup
	spans := 0
	var mu sync.Mutex
	for r := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				i := (r + round) % len(objs)
				buf := make([]byte, 20000)
				for off := int64(0); off < objs[i].Size; off += int64(len(buf)) {
					sp, n, err := c.ReadSpan(context.Background(), src, objs[i], buf, off)
					if err != nil && err != io.EOF {
						t.Error(err)
						return
					}
					got := buf[:n]
					if sp != nil {
						if sp.Len() != n {
							t.Errorf("span of %d bytes for a read of %d", sp.Len(), n)
						}
						got = spanBytes(t, sp)
						time.Sleep(100 * time.Microsecond) // let evictions try to release it
						again := spanBytes(t, sp)
						if string(again) != string(got) {
							t.Errorf("%s at %d: bytes changed under a span", objs[i].Name, off)
						}
						sp.Close()
						mu.Lock()
						spans++
						mu.Unlock()
					}
					want := refs[i][off:min(off+int64(len(buf)), objs[i].Size)]
					if string(got) != string(want) {
						t.Errorf("%s at %d: wrong bytes (span %v)", objs[i].Name, off, sp != nil)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	waitIdle(t, c)
	if spans == 0 {
		t.Fatal("no read was served as a span")
	}
	if c.Stats().Evictions == 0 {
		t.Fatal("no evictions")
	}
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
	// A sequential read across chunks is one span (the chunks are contiguous in the data
	// file); a random read is copied.
	p := make([]byte, testChunk+500)
	sp, n, err := c.ReadSpan(context.Background(), src, objs[1], p, 0)
	if sp == nil || err != nil || n != len(p) {
		t.Fatalf("sequential read across chunks: span %v, %d bytes, %v", sp != nil, n, err)
	}
	got := spanBytes(t, sp)
	sp.Close()
	if string(got) != string(refs[1][:len(p)]) {
		t.Fatal("span across chunks: wrong bytes")
	}
	p = p[:1000]
	sp, n, err = c.ReadSpan(context.Background(), src, objs[0], p, 3*testChunk+7)
	if sp != nil || err != nil || string(p[:n]) != string(refs[0][3*testChunk+7:3*testChunk+1007]) {
		t.Fatalf("random read: span %v, %d bytes, %v", sp != nil, n, err)
	}
}

// spanBytes returns the bytes of a span, from memory or from its data file.
func spanBytes(t testing.TB, sp *Span) []byte {
	t.Helper()
	if sp.Vecs() != nil {
		var b []byte
		for _, v := range sp.Vecs() {
			b = append(b, v...)
		}
		return b
	}
	got := make([]byte, sp.Len())
	if _, err := syscall.Pread(int(sp.Fd()), got, sp.Off()); err != nil {
		t.Error(err)
	}
	return got
}
