package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// warmupFixture is a bucket with a directory of small files, one object of several chunks,
// objects whose names are unsafe as paths, and objects outside the warmed directory.
type warmupFixture struct {
	srv    *emulator.Server
	conf   string
	common []string
	files  map[string][]byte // name relative to the connection (ds: gs://bkt/pre) → content
}

const warmChunk = "1MiB"

func newWarmupFixture(t *testing.T) *warmupFixture {
	t.Helper()
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	f := &warmupFixture{srv: srv, files: map[string][]byte{}}
	rng := rand.New(rand.NewPCG(23, 3))
	put := func(name string, n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := srv.PutObject("bkt", "pre/"+name, b, ""); err != nil {
			t.Fatal(err)
		}
		f.files[name] = b
	}
	for i := range 12 {
		put("data/img/"+string(rune('a'+i))+".bin", 40<<10+i*1000)
	}
	put("data/big.bin", 3<<20+12345) // four 1 MiB chunks
	put("data/x/../escape", 5000)    // names a mount does not show, but the cache keys by name
	put("data/dup//slash", 6000)
	put("other/not-warmed.bin", 70<<10)
	f.conf = mountConf(t, map[string]string{"ds": "gs://bkt/pre"})
	f.common = []string{"--config", f.conf, "--endpoint", srv.URL()}
	return f
}

// warmed are the objects under data/.
func (f *warmupFixture) warmed() (names []string, bytes int64) {
	for n, b := range f.files {
		if strings.HasPrefix(n, "data/") {
			names = append(names, n)
			bytes += int64(len(b))
		}
	}
	return names, bytes
}

// readMounted reads every file under data/ that the mount shows, checks its content, and
// returns how many it read.
func (f *warmupFixture) readMounted(t *testing.T, mnt string) int {
	t.Helper()
	n := 0
	for name, want := range f.files {
		if !strings.HasPrefix(name, "data/") || strings.Contains(name, "..") || strings.Contains(name, "//") {
			continue
		}
		got, err := os.ReadFile(filepath.Join(mnt, "ds", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: read %d bytes that differ from the object's %d", name, len(got), len(want))
		}
		n++
	}
	return n
}

// TestWarmupFillsTheMountsCache: plxfs warmup --dry-run counts and fetches nothing; warmup
// then fetches every object under the prefix (names unsafe as paths included) and nothing
// outside it; a second warmup fetches nothing (resumable); and a mount on the same cache dir
// reads every warmed file without one GET.
func TestWarmupFillsTheMountsCache(t *testing.T) {
	f := newWarmupFixture(t)
	cacheDir := t.TempDir()
	names, total := f.warmed()
	args := append(append([]string{}, f.common...), "--cache-dir", cacheDir, "--chunk-size", warmChunk)

	dry := plx(t, args, "warmup", "--dry-run", "ds:data")
	mustCode(t, "warmup --dry-run", dry, 0)
	wantDry := []string{"ds:data: 15 objects, ", "15 to fetch", "0 cached already", ": fits"}
	for _, w := range wantDry {
		if !strings.Contains(dry.Stdout, w) {
			t.Fatalf("warmup --dry-run printed %q, want %q in it", dry.Stdout, w)
		}
	}
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("--dry-run sent %d GETs", c.MediaGets)
	}
	if data, _ := filepath.Glob(filepath.Join(cacheDir, "chunks", "v2", "*", "*.data")); len(data) != 0 {
		t.Fatalf("--dry-run wrote %d cache files", len(data))
	}
	if len(names) != 15 {
		t.Fatalf("fixture has %d objects under data/", len(names))
	}

	f.srv.ResetCounts()
	res := plx(t, args, "warmup", "ds:data")
	mustCode(t, "warmup", res, 0)
	if !strings.Contains(res.Stderr, "warmed 15 files") {
		t.Fatalf("warmup said %q", res.Stderr)
	}
	c := f.srv.Requests()
	for _, n := range names {
		if len(c.ReadsOf("bkt", "pre/"+n)) == 0 {
			t.Errorf("warmup did not fetch %s", n)
		}
	}
	if r := c.ReadsOf("bkt", "pre/other/not-warmed.bin"); len(r) != 0 {
		t.Errorf("warmup fetched an object outside the prefix")
	}
	var fetched int64
	for _, r := range c.Reads {
		fetched += rangeLen(t, r.Range, f.files[strings.TrimPrefix(r.Object, "pre/")])
	}
	if fetched != total {
		t.Errorf("warmup fetched %d bytes for %d bytes of objects", fetched, total)
	}

	f.srv.ResetCounts()
	again := plx(t, args, "warmup", "ds:data")
	mustCode(t, "warmup again", again, 0)
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("a second warmup sent %d GETs: %+v", c.MediaGets, c.Reads)
	}
	if !strings.Contains(again.Stderr, "warmed 0 files") || !strings.Contains(again.Stderr, "15 skipped") {
		t.Fatalf("second warmup said %q", again.Stderr)
	}
	dry = plx(t, args, "warmup", "-n", "ds:data")
	mustCode(t, "warmup --dry-run after", dry, 0)
	if !strings.Contains(dry.Stdout, "0 to fetch") || !strings.Contains(dry.Stdout, "15 cached already") {
		t.Fatalf("--dry-run after warming printed %q", dry.Stdout)
	}

	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, f.srv, f.conf, mnt, cacheDir, "--chunk-size", warmChunk, "--read-only")
	f.srv.ResetCounts()
	if n := f.readMounted(t, mnt); n != 13 {
		t.Fatalf("read %d files through the mount", n)
	}
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("the mount sent %d GETs for warmed files: %+v", c.MediaGets, c.Reads)
	}
}

// rangeLen is the length of a media GET's Range header ("" is the whole object).
func rangeLen(t *testing.T, rng string, obj []byte) int64 {
	t.Helper()
	if rng == "" {
		return int64(len(obj))
	}
	var lo, hi int64
	if _, err := fmt.Sscanf(rng, "bytes=%d-%d", &lo, &hi); err != nil {
		t.Fatalf("range %q: %v", rng, err)
	}
	return min(hi, int64(len(obj))-1) - lo + 1
}

// TestWarmupTooBig: a prefix that does not fit --cache-size is refused with one line naming
// the flag and --force, and fetches nothing; with --force it is warmed.
func TestWarmupTooBig(t *testing.T) {
	f := newWarmupFixture(t)
	args := append(append([]string{}, f.common...), "--cache-dir", t.TempDir(), "--chunk-size", "64KiB", "--cache-size", "512KiB")
	res := plx(t, args, "warmup", "ds:data")
	mustCode(t, "warmup of too much", res, 1)
	msg := strings.TrimSpace(res.Stderr)
	if strings.Count(msg, "\n") != 0 || !strings.Contains(msg, "ds:data") || !strings.Contains(msg, "--cache-size") || !strings.Contains(msg, "--force") {
		t.Fatalf("want one line naming ds:data, --cache-size and --force, got %q", res.Stderr)
	}
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("a refused warmup sent %d GETs", c.MediaGets)
	}
	dry := plx(t, args, "warmup", "--dry-run", "ds:data")
	mustCode(t, "dry run of too much", dry, 0)
	if !strings.Contains(dry.Stdout, "does NOT fit") {
		t.Fatalf("--dry-run printed %q", dry.Stdout)
	}
	// Each file fits, all of them do not: --force warms them, the cache evicting the first.
	mustCode(t, "warmup --force", plx(t, args, "warmup", "--force", "ds:data/img"), 0)
	// An object larger than the whole cache can never be cached: it fails, named.
	res = plx(t, args, "warmup", "--force", "ds:data")
	mustCode(t, "warmup --force with an object larger than the cache", res, 1)
	if !strings.Contains(res.Stderr, "big.bin: larger than the cache") {
		t.Fatalf("want big.bin named as larger than the cache, got %q", res.Stderr)
	}
	mustCode(t, "warmup of nothing", plx(t, args, "warmup", "ds:nothing-here"), 1)
}

// TestWarmupThroughDaemon: while a mount holds the cache dir, plxfs warmup asks it over its
// status socket, and the mount then reads the warmed files without a GET. A mount started
// with --warmup warms in the background once mounted, and says so in its log.
func TestWarmupThroughDaemon(t *testing.T) {
	f := newWarmupFixture(t)
	cacheDir := t.TempDir()
	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, f.srv, f.conf, mnt, cacheDir, "--chunk-size", warmChunk)
	args := append(append([]string{}, f.common...), "--cache-dir", cacheDir, "--chunk-size", warmChunk)

	dry := plx(t, args, "warmup", "--dry-run", "ds:data")
	mustCode(t, "warmup --dry-run through the daemon", dry, 0)
	if !strings.Contains(dry.Stdout, "15 to fetch") {
		t.Fatalf("--dry-run through the daemon printed %q\n%s", dry.Stdout, dry.Stderr)
	}
	res := plx(t, args, "warmup", "ds:data")
	mustCode(t, "warmup through the daemon", res, 0)
	if !strings.Contains(res.Stderr, "warmed 15 files") {
		t.Fatalf("warmup through the daemon said %q", res.Stderr)
	}
	f.srv.ResetCounts()
	if n := f.readMounted(t, mnt); n != 13 {
		t.Fatalf("read %d files through the mount", n)
	}
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("the mount sent %d GETs for files it warmed: %+v", c.MediaGets, c.Reads)
	}
	res = plx(t, args, "warmup", "ds:data")
	mustCode(t, "second warmup through the daemon", res, 0)
	if !strings.Contains(res.Stderr, "warmed 0 files") {
		t.Fatalf("second warmup through the daemon said %q", res.Stderr)
	}

	// --warmup on the mount.
	cacheDir2 := t.TempDir()
	mnt2 := filepath.Join(t.TempDir(), "mnt2")
	d := startMount(t, f.srv, f.conf, mnt2, cacheDir2, "--chunk-size", warmChunk, "--warmup", "ds/data/img", "--warmup", filepath.Join(mnt2, "ds", "data", "big.bin"))
	deadline := time.Now().Add(60 * time.Second)
	for strings.Count(d.stderr.String(), "msg=\"warmup: done\"") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("no two \"warmup: done\" in the mount's log after 60s:\n%s", d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(d.stderr.String(), "objects=12 ") {
		t.Fatalf("the mount's log does not count the 12 objects warmed:\n%s", d.stderr.String())
	}
	f.srv.ResetCounts()
	if n := f.readMounted(t, mnt2); n != 13 {
		t.Fatalf("read %d files through the mount", n)
	}
	if c := f.srv.Requests(); c.MediaGets != 0 {
		t.Fatalf("the mount sent %d GETs for files its --warmup warmed: %+v", c.MediaGets, c.Reads)
	}
}
