package fs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

func TestReadSizes(t *testing.T) {
	const chunk = 8 << 20 // the default chunk size
	e := newEnv(t, envOptions{chunkSize: chunk})
	big := 300 << 20
	if raceEnabled {
		big = 64 << 20
	}
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, big}
	for i, n := range sizes {
		e.put(testBucket, fmt.Sprintf("sizes/f%d", n), randBytes(uint64(i), n))
	}
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := e.path("c", fmt.Sprintf("sizes/f%d", n))
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(n) || !fi.Mode().IsRegular() {
				t.Fatalf("stat: size %d mode %v, want a regular file of %d bytes", fi.Size(), fi.Mode(), n)
			}
			got, gotN := fileSum(t, p)
			if gotN != int64(n) || got != sum(randBytes(uint64(i), n)) {
				t.Fatalf("content of the %d-byte object differs (read %d bytes)", n, gotN)
			}
		})
	}
}

// TestRandomPreads compares random (offset, length) preads with the source, cold and warm,
// including reads that straddle chunk boundaries and the end of the file.
func TestRandomPreads(t *testing.T) {
	const chunk = 1 << 20
	e := newEnv(t, envOptions{chunkSize: chunk})
	data := randBytes(7, 5*chunk+777)
	e.put(testBucket, "r/obj", data)
	f, err := os.Open(e.path("c", "r/obj"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < 400; i++ {
		off := r.Int64N(int64(len(data)) + 10)
		n := 1 + r.IntN(3*chunk/2)
		if i%3 == 0 {
			n = 1 + r.IntN(8192) // small random reads
		}
		buf := make([]byte, n)
		k, err := f.ReadAt(buf, off)
		if err != nil && err != io.EOF {
			t.Fatalf("pread(%d, %d): %v", off, n, err)
		}
		want := []byte{}
		if off < int64(len(data)) {
			want = data[off:min(int64(len(data)), off+int64(n))]
		}
		if !bytes.Equal(buf[:k], want) {
			t.Fatalf("pread(%d, %d): %d bytes differ from the source (%d bytes)", off, n, k, len(want))
		}
	}
}

// TestSemantics_ConcurrentReadersFetchOnce: 64 readers of one file all read the right bytes, and the
// emulator sees every byte of the object requested once.
func TestSemantics_ConcurrentReadersFetchOnce(t *testing.T) {
	const chunk = 8 << 20 // the default
	e := newEnv(t, envOptions{chunkSize: chunk})
	data := randBytes(9, 4*chunk+5)
	e.put(testBucket, "shared.bin", data)
	p := e.path("c", "shared.bin")
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	e.emu.ResetCounts()
	want := sum(data)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Hash while reading: 64 whole copies would be 2 GiB of test memory.
			got, n := fileSum(t, p)
			if got != want || n != int64(len(data)) {
				errs <- fmt.Errorf("reader %d: content differs (%d bytes)", i, n)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	assertFetchedOnce(t, e.emu.Requests().ReadsOf(testBucket, "shared.bin"), int64(len(data)), chunk)
}

// assertFetchedOnce checks that the ranged reads cover [0, size), that no chunk was fetched
// whole more than once (one fetch per chunk however many readers), and that little else was
// fetched twice: the cache may serve a reader it takes for a random one with small blocks of a
// chunk that is then fetched whole (logged, bounded here to a quarter of the object).
func assertFetchedOnce(t *testing.T, reads []emulator.Read, size, chunk int64) {
	t.Helper()
	type span struct{ lo, hi int64 }
	var spans []span
	wholeChunks := map[int64]int{}
	for _, r := range reads {
		lo, hi, ok := parseRange(r.Range, size)
		if !ok {
			t.Fatalf("unexpected read without a usable range: %+v", r)
		}
		spans = append(spans, span{lo, hi})
		if lo%chunk == 0 && hi == min(lo+chunk, size) {
			wholeChunks[lo/chunk]++
		}
	}
	for i, n := range wholeChunks {
		if n > 1 {
			t.Fatalf("chunk %d fetched whole %d times (%d reads: %v)", i, n, len(spans), spans)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].lo < spans[j].lo })
	next, fetched, again := int64(0), int64(0), int64(0)
	for _, s := range spans {
		if s.lo > next {
			t.Fatalf("bytes [%d, %d) never fetched, yet the readers got them", next, s.lo)
		}
		if s.lo < next {
			again += min(next, s.hi) - s.lo
		}
		fetched += s.hi - s.lo
		next = max(next, s.hi)
	}
	if next != size {
		t.Fatalf("fetched up to %d of %d bytes", next, size)
	}
	if again > size/4 {
		t.Fatalf("%d bytes fetched more than once (%d reads: %v)", again, len(spans), spans)
	}
	t.Logf("%d range requests, %d bytes for a %d-byte object (%d fetched twice)", len(spans), fetched, size, again)
}

// parseRange parses "bytes=a-b" (b inclusive) or "bytes=a-" into [lo, hi).
func parseRange(h string, size int64) (lo, hi int64, ok bool) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found {
		return 0, 0, false
	}
	a, b, _ := strings.Cut(spec, "-")
	lo, err := strconv.ParseInt(a, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	if b == "" {
		return lo, size, true
	}
	end, err := strconv.ParseInt(b, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return lo, min(end+1, size), true
}

// TestSemantics_OverwriteBehindMount: an object rewritten in the bucket is read with its new bytes once
// the TTL has passed, and no read ever returns a mix of the two generations.
func TestSemantics_OverwriteBehindMount(t *testing.T) {
	const chunk = 256 << 10
	const ttl = 500 * time.Millisecond
	e := newEnv(t, envOptions{chunkSize: chunk, ttl: ttl})
	versions := [][]byte{randBytes(1, 3*chunk+100), randBytes(2, 2*chunk+7), randBytes(3, 4*chunk)}
	e.put(testBucket, "ow/obj", versions[0])
	p := e.path("c", "ow/obj")
	equalBytes(t, "first read", mustRead(t, p), versions[0])

	// A reader loops over whole-file reads while the object is rewritten twice.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[int]int{}
	stale := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(p)
			mu.Lock()
			switch {
			case errors.Is(err, syscall.ESTALE):
				stale++ // the generation this open pinned was replaced: a clean failure, not a mix
			case err != nil:
				t.Errorf("read during overwrites: %v", err)
			default:
				v := -1
				for i, want := range versions {
					if bytes.Equal(got, want) {
						v = i
					}
				}
				if v < 0 {
					for i, want := range versions {
						if len(got) <= len(want) && bytes.Equal(got, want[:len(got)]) {
							t.Logf("the bytes read are a prefix of version %d (%d bytes)", i, len(want))
						}
						if len(got) >= len(want) && bytes.Equal(got[:len(want)], want) {
							t.Logf("the bytes read start with all of version %d (%d bytes), then go on", i, len(want))
						}
					}
					t.Errorf("read %d bytes that match no version: a mix of generations", len(got))
				}
				seen[v]++
			}
			mu.Unlock()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	for _, v := range versions[1:] {
		time.Sleep(ttl / 2)
		e.put(testBucket, "ow/obj", v)
		time.Sleep(ttl + ttl/2)
		equalBytes(t, "read after the TTL", mustRead(t, p), v)
	}
	close(stop)
	wg.Wait()
	t.Logf("versions seen by the looping reader: %v; ESTALE %d", seen, stale)
}

// chunkFiles lists the cache's chunk files (largest first).
func chunkFiles(t *testing.T, dir string) []string {
	t.Helper()
	type f struct {
		path string
		size int64
	}
	var files []f
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name() != "lock" {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			files = append(files, f{p, fi.Size()})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].size > files[j].size })
	var out []string
	for _, x := range files {
		out = append(out, x.path)
	}
	return out
}

// dirBytes is the disk space the cache's files occupy (allocated blocks: data files are sparse).
func dirBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	for _, p := range chunkFiles(t, dir) {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == syscall.ENOENT {
			continue // released by the cache since it was listed: it holds nothing
		} else if err != nil {
			t.Fatal(err)
		}
		total += st.Blocks * 512
	}
	return total
}

// TestCacheEvictionBound: reading far more than the cache size keeps the cache under its bound.
func TestCacheEvictionBound(t *testing.T) {
	const chunk = 256 << 10
	const max = 2 << 20
	e := newEnv(t, envOptions{chunkSize: chunk, cacheMax: max})
	for i := 0; i < 6; i++ {
		e.put(testBucket, fmt.Sprintf("ev/%d", i), randBytes(uint64(i), 1<<20+i))
	}
	for i := 0; i < 6; i++ {
		data := randBytes(uint64(i), 1<<20+i)
		equalBytes(t, "read", mustRead(t, e.path("c", fmt.Sprintf("ev/%d", i))), data)
		if st := e.cache.Stats(); st.Bytes > max {
			t.Fatalf("cache holds %d bytes, bound %d", st.Bytes, max)
		}
	}
	if got := dirBytes(t, e.cacheDir); got > max+max/4 { // headers and block rounding
		t.Fatalf("cache directory holds %d bytes of chunk files, bound %d", got, max)
	}
	if e.cache.Stats().Evictions == 0 {
		t.Fatal("no evictions after reading 3x the cache size")
	}
}

// TestRestartKeepsWarmChunks: after a daemon restart on the same cache directory, cached
// chunks are served without fetching; a damaged chunk is detected and refetched.
func TestRestartKeepsWarmChunks(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	data := randBytes(5, 4*chunk)
	e.put(testBucket, "warm.bin", data)
	equalBytes(t, "cold read", mustRead(t, e.path("c", "warm.bin")), data)

	e.remount()
	e.emu.ResetCounts()
	equalBytes(t, "read after restart", mustRead(t, e.path("c", "warm.bin")), data)
	if reads := e.emu.Requests().ReadsOf(testBucket, "warm.bin"); len(reads) != 0 {
		t.Fatalf("after a restart the warm object was fetched again: %v", reads)
	}

	e.unmount()
	files := chunkFiles(t, e.cacheDir)
	if len(files) == 0 || !strings.HasSuffix(files[0], ".data") {
		t.Fatalf("no data file in the cache directory: %v", files)
	}
	f, err := os.OpenFile(files[0], os.O_RDWR, 0) // flip a byte of chunk 2
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^data[2*chunk+10]}, 2*chunk+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	e.mount()
	e.emu.ResetCounts()
	equalBytes(t, "read after damaging a chunk", mustRead(t, e.path("c", "warm.bin")), data)
	reads := e.emu.Requests().ReadsOf(testBucket, "warm.bin")
	if len(reads) == 0 {
		t.Fatal("the truncated chunk was not refetched")
	}
	if len(reads) > 2 {
		t.Fatalf("expected the one damaged chunk to be refetched, got %d reads: %v", len(reads), reads)
	}
}
