package cache

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// withCRC returns obj with the CRC32C of data, as a listing gives it.
func withCRC(obj Object, data []byte) Object {
	obj.CRC32C, obj.HasCRC32C = crc32.Checksum(data, crc32c.Table), true
	return obj
}

// flipped returns a copy of b with one byte inverted at i.
func flipped(b []byte, i int) []byte {
	out := bytes.Clone(b)
	out[i] ^= 0xff
	return out
}

// TestWholeObjectCorruptionNeverServed: a one-chunk object whose response has a flipped byte
// is fetched again before any byte is served; when every response is corrupt the read fails
// with ErrChecksum, and nothing is cached.
func TestWholeObjectCorruptionNeverServed(t *testing.T) {
	src := newFakeSource()
	ref := pattern(5, 40000)
	obj := withCRC(src.put("small", 5, ref), ref)
	var calls atomic.Int64
	src.body = func(r request, b []byte) io.Reader {
		if calls.Add(1)%2 == 1 { // every other response is damaged
			return bytes.NewReader(flipped(b, len(b)/3))
		}
		return bytes.NewReader(b)
	}
	c := openTest(t, Options{ChunkSize: testChunk})
	p := make([]byte, len(ref))
	if _, err := c.ReadAt(context.Background(), src, obj, p, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "whole object after one corrupt response", p, ref)
	if st := c.Stats(); st.ChecksumMismatches != 1 || st.Fetches != 2 {
		t.Fatalf("stats %+v, want 1 mismatch in 2 fetches", st)
	}
	waitIdle(t, c)

	src2 := newFakeSource()
	obj2 := withCRC(src2.put("bad", 6, pattern(6, 30000)), pattern(6, 30000))
	src2.body = func(r request, b []byte) io.Reader { return bytes.NewReader(flipped(b, 7)) }
	_, err := c.ReadAt(context.Background(), src2, obj2, make([]byte, 100), 0)
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of an always-corrupt object: %v, want ErrChecksum", err)
	}
	waitIdle(t, c)
	src2.body = nil
	src2.reset()
	q := make([]byte, 30000)
	if _, err := c.ReadAt(context.Background(), src2, obj2, q, 0); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "after the faults stop", q, pattern(6, 30000))
	if n := len(src2.reqs()); n != 1 {
		t.Fatalf("%d requests after the faults stopped, want 1 (nothing corrupt was cached)", n)
	}
}

// TestCorruptChunkIsNotKept: a chunk of a large object arrives with a flipped byte. It is
// served (nothing can be checked before the object is complete), but once every chunk is in,
// the combined CRC32C fails: the read that reaches the end fails, everything of the generation
// is dropped, and the next read gets the right bytes from GCS.
func TestCorruptChunkIsNotKept(t *testing.T) {
	src := newFakeSource()
	ref := pattern(7, 6*testChunk+123)
	obj := withCRC(src.put("big", 7, ref), ref)
	var once atomic.Bool
	src.body = func(r request, b []byte) io.Reader {
		if r.Off == 3*testChunk && !once.Swap(true) {
			return bytes.NewReader(flipped(b, 99))
		}
		return bytes.NewReader(b)
	}
	// No prefetch: chunks arrive in the reader's order, so the damaged one is served (and
	// written behind) before the last chunk completes the check.
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
	// The reader is served the damaged chunk, but the read that reaches the end of the object
	// fails with ErrChecksum instead of ending the file: it never gets EOF after wrong bytes.
	first, endErr := readToEnd(c, src, obj, 10000)
	if int64(len(first)) < obj.Size-10000 {
		t.Fatalf("failed before the end: %v", endErr)
	}
	if !errors.Is(endErr, ErrChecksum) {
		t.Fatalf("the read that reached the end: %v, want ErrChecksum", endErr)
	}
	if bytes.Equal(first, ref[:len(first)]) {
		t.Fatal("the corrupt chunk was not served: the test injects nothing")
	}
	// So does any later read that reaches the end, until the generation passes its check.
	if _, err := c.ReadAt(context.Background(), src, obj, make([]byte, 100), obj.Size-100); !errors.Is(err, ErrChecksum) {
		t.Fatalf("a later read of the end: %v, want ErrChecksum", err)
	}
	waitIdle(t, c)
	if st := c.Stats(); st.ChecksumMismatches != 1 {
		t.Fatalf("stats %+v, want 1 mismatch", st)
	}
	src.reset()
	mustEqual(t, "second read", readAll(t, c, src, obj, 10000), ref)
	if len(src.reqs()) == 0 {
		t.Fatal("second read was served from the cache that held corrupt bytes")
	}
	waitIdle(t, c)
	src.reset()
	mustEqual(t, "third read (cached, verified)", readAll(t, c, src, obj, 10000), ref)
	if n := len(src.reqs()); n != 0 {
		t.Fatalf("third read made %d requests, want 0", n)
	}
}

// TestCorruptRefetchOfVerifiedGenerationIsNotKept: once a generation passed its check, a chunk
// fetched again (its cached copy was pushed out) with a flipped byte is known to be wrong: it is
// counted and not kept, and the next read gets the object's bytes from a new fetch.
func TestCorruptRefetchOfVerifiedGenerationIsNotKept(t *testing.T) {
	src := newFakeSource()
	ref := pattern(17, 4*testChunk)
	obj := withCRC(src.put("again", 17, ref), ref)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1})
	mustEqual(t, "first read", readAll(t, c, src, obj, 10000), ref)
	waitIdle(t, c)
	if st := c.Stats(); st.ChecksumMismatches != 0 {
		t.Fatalf("stats %+v, want no mismatch", st)
	}
	dropMemory(t, c)
	c.Invalidate(obj.Bucket, obj.Name) // the cached copies go; the generation's CRCs stay known
	var flips atomic.Int64
	src.body = func(r request, b []byte) io.Reader {
		if r.Off == 2*testChunk && flips.Add(1) == 1 {
			return bytes.NewReader(flipped(b, 7))
		}
		return bytes.NewReader(b)
	}
	// Chunk 2 is served as it arrives, damaged; the read that reaches the end fails.
	if _, err := readToEnd(c, src, obj, 10000); !errors.Is(err, ErrChecksum) {
		t.Fatalf("the read that reached the end: %v, want ErrChecksum", err)
	}
	waitIdle(t, c)
	if flips.Load() == 0 {
		t.Fatal("chunk 2 was not fetched again: the test injects nothing")
	}
	if st := c.Stats(); st.ChecksumMismatches != 1 {
		t.Fatalf("stats %+v, want 1 mismatch", st)
	}
	dropMemory(t, c)
	mustEqual(t, "read after the damaged fetch", readAll(t, c, src, obj, 10000), ref)
}

// TestResumeAfterBrokenBody: a response that breaks off mid-chunk is continued from the byte
// where it stopped, with a new request; readers see the right bytes.
func TestResumeAfterBrokenBody(t *testing.T) {
	src := newFakeSource()
	ref := pattern(8, 4*testChunk)
	obj := withCRC(src.put("cut", 8, ref), ref)
	var cuts atomic.Int64
	src.body = func(r request, b []byte) io.Reader {
		if len(b) > 1000 && cuts.Add(1) <= 3 {
			return io.MultiReader(bytes.NewReader(b[:len(b)/2]), errReader{})
		}
		return bytes.NewReader(b)
	}
	c := openTest(t, Options{ChunkSize: testChunk})
	mustEqual(t, "read through broken bodies", readAll(t, c, src, obj, 30000), ref)
	waitIdle(t, c)
	if st := c.Stats(); st.Resumes != 3 || st.ChecksumMismatches != 0 {
		t.Fatalf("stats %+v, want 3 resumes and no mismatch", st)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, unix.ECONNRESET }

// TestMemoryBudgetHolds: eight sequential readers of different objects never have more chunk
// memory than the budget, and get the right bytes.
func TestMemoryBudgetHolds(t *testing.T) {
	src := newFakeSource()
	var objs []Object
	var refs [][]byte
	for i := range 8 {
		ref := pattern(int64(10+i), 24*testChunk+int64(i))
		objs = append(objs, withCRC(src.put("r"+itoa(int64(i)), int64(10+i), ref), ref))
		refs = append(refs, ref)
	}
	budget := int64(6 * testChunk)
	c := openTest(t, Options{ChunkSize: testChunk, PrefetchMemory: budget, Readahead: 4, MaxBytes: 1 << 30})
	stop := make(chan struct{})
	var peak atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if m := c.Stats().MemoryBytes; m > peak.Load() {
				peak.Store(m)
			}
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var wg sync.WaitGroup
	for i := range objs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := readAll(t, c, src, objs[i], 1<<15); !bytes.Equal(got, refs[i]) {
				t.Errorf("reader %d: wrong bytes", i)
			}
		}()
	}
	wg.Wait()
	close(stop)
	t.Logf("peak chunk memory %d KiB of a %d KiB budget; stats %+v", peak.Load()>>10, budget>>10, c.Stats())
	if peak.Load() > budget {
		t.Fatalf("chunk memory peaked at %d bytes, budget %d", peak.Load(), budget)
	}
}

// TestSlowDiskSlowsNothing: with the cache's disk writes stalled, a sequential reader still
// reads every byte (from memory and GCS): the writes that cannot be queued are skipped.
func TestSlowDiskSlowsNothing(t *testing.T) {
	src := newFakeSource()
	ref := pattern(30, 40*testChunk)
	obj := withCRC(src.put("slow", 30, ref), ref)
	release := make(chan struct{})
	opts := Options{ChunkSize: testChunk, PrefetchMemory: 8 * testChunk}
	opts.beforeWrite = func() { <-release }
	c := openTest(t, opts)
	done := make(chan []byte)
	go func() { done <- readAll(t, c, src, obj, 1<<15) }()
	select {
	case got := <-done:
		mustEqual(t, "read while the disk is stalled", got, ref)
	case <-time.After(20 * time.Second):
		t.Fatal("the reader waited for the stalled disk")
	}
	st := c.Stats()
	close(release)
	if st.WriteSkips == 0 {
		t.Fatalf("stats %+v: no chunk was skipped although the disk took none", st)
	}
	t.Logf("with the disk stalled: %d chunks skipped, %d fetches for %d chunks", st.WriteSkips, st.Fetches, 40)
}

// TestFullDiskLosesNothing: a cache dir on a file system that fills up (a 256 KiB tmpfs) costs
// caching, not reads: every byte is right, and the write errors are counted.
func TestFullDiskLosesNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount a small tmpfs (the tests run as root): %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	src := newFakeSource()
	ref := pattern(31, 32*testChunk)
	obj := withCRC(src.put("full", 31, ref), ref)
	c := openTest(t, Options{Dir: dir, ChunkSize: testChunk, MaxBytes: 1 << 30})
	mustEqual(t, "read with a full cache disk", readAll(t, c, src, obj, 1<<15), ref)
	waitIdle(t, c)
	if st := c.Stats(); st.WriteErrors == 0 {
		t.Fatalf("stats %+v: no write error on a 256 KiB file system", st)
	}
	mustEqual(t, "read again", readAll(t, c, src, obj, 1<<15), ref)
}

// TestStopPrefetchCancels: when the last reader goes (StopPrefetch), fetches nobody waits for
// are cancelled, and their memory returns.
func TestStopPrefetchCancels(t *testing.T) {
	src := newFakeSource()
	ref := pattern(32, 20*testChunk)
	obj := withCRC(src.put("stop", 32, ref), ref)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: 8})
	p := make([]byte, 4096)
	for off := int64(0); off < 3*testChunk; off += 4096 {
		if _, err := c.ReadAt(context.Background(), src, obj, p, off); err != nil {
			t.Fatal(err)
		}
	}
	waitIdle(t, c)
	src.gate = make(chan struct{}) // from now on, fetches hang until cancelled
	if _, err := c.ReadAt(context.Background(), src, obj, p, 3*testChunk); err != nil {
		t.Fatal(err)
	}
	for c.Stats().FetchesInFlight == 0 {
		time.Sleep(time.Millisecond)
	}
	c.StopPrefetch(obj)
	deadline := time.Now().Add(10 * time.Second)
	for c.Stats().FetchesInFlight != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("prefetch still running after StopPrefetch: %+v", c.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	close(src.gate)
}

// TestVerifyReads: with VerifyReads, a read of a large object waits for its whole-object check;
// then a damaged fetch of one of its chunks is caught (against the chunk CRC the check learnt)
// and fetched again before a byte is served; an object that never passes fails with
// ErrChecksum, serving nothing.
func TestVerifyReads(t *testing.T) {
	src := newFakeSource()
	ref := pattern(40, 6*testChunk+321)
	obj := withCRC(src.put("v", 40, ref), ref)
	var once atomic.Bool
	src.body = func(r request, b []byte) io.Reader {
		if r.Off == 2*testChunk && !once.Swap(true) {
			return bytes.NewReader(flipped(b, 5))
		}
		return bytes.NewReader(b)
	}
	c := openTest(t, Options{ChunkSize: testChunk, VerifyReads: true})
	mustEqual(t, "verified read", readAll(t, c, src, obj, 10000), ref)
	if st := c.Stats(); st.ChecksumMismatches == 0 {
		t.Fatalf("stats %+v: the damaged chunk was not detected", st)
	}
	waitIdle(t, c)
	// Random reads of a verified generation are checked too (whole chunks, known CRCs).
	p := make([]byte, 100)
	if _, err := c.ReadAt(context.Background(), src, obj, p, 4*testChunk+7); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "random read", p, ref[4*testChunk+7:4*testChunk+107])

	bad := newFakeSource()
	badRef := pattern(41, 3*testChunk)
	badObj := withCRC(bad.put("bad", 41, badRef), badRef)
	bad.body = func(r request, b []byte) io.Reader { return bytes.NewReader(flipped(b, 1)) }
	if _, err := c.ReadAt(context.Background(), bad, badObj, make([]byte, 10), 0); !errors.Is(err, ErrChecksum) {
		t.Fatalf("read of an object that never passes: %v, want ErrChecksum", err)
	}
}
