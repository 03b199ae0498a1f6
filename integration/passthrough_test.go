package integration

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/emulator"
)

// servedBytes is the daemon's count of bytes it served from the cache (reads that reached it).
func servedBytes(t *testing.T, url string) float64 {
	t.Helper()
	return metric(scrapeMetrics(t, url), "plxfs_cache_served_bytes_total")
}

// TestPassthrough: on a read-only mount, a file whose object is wholly cached is read by the
// kernel from the cache's data file (the daemon serves none of it); handles coexist on one file
// without EIO; the pinned data file outlives eviction; a new generation is read once the
// passthrough handles of the old one are closed. --passthrough=false, and read-write mounts,
// keep reads in the daemon.
func TestPassthrough(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{"pt-bkt"}})
	data := genBytes(7, 5<<20+333)
	if err := srv.PutObject("pt-bkt", "f.bin", data, ""); err != nil {
		t.Fatal(err)
	}
	other := genBytes(8, 6<<20)
	if err := srv.PutObject("pt-bkt", "other.bin", other, ""); err != nil {
		t.Fatal(err)
	}
	conf := mountConf(t, map[string]string{"ds": "gs://pt-bkt"})

	for _, off := range [][]string{{"--read-only", "--passthrough=false"}, {}} {
		t.Run("off "+strings.Join(off, " "), func(t *testing.T) {
			mnt := filepath.Join(t.TempDir(), "mnt")
			d := startMount(t, srv, conf, mnt, t.TempDir(), append(off, "--chunk-size", "1MiB", "--metrics-addr", "127.0.0.1:0")...)
			url := daemonURL(t, d, "serving metrics")
			p := filepath.Join(mnt, "ds", "f.bin")
			equalBytes(t, "cold read", readUncached(t, p), data)
			before := servedBytes(t, url)
			equalBytes(t, "warm read", readUncached(t, p), data)
			if got := servedBytes(t, url) - before; got < float64(len(data)) {
				t.Fatalf("daemon served %v bytes of the warm re-read without passthrough, want %d", got, len(data))
			}
			if !strings.Contains(d.stderr.String(), "FUSE passthrough is off") && len(off) == 0 {
				t.Fatalf("a read-write mount did not say passthrough is off:\n%s", d.stderr.String())
			}
		})
	}

	mnt := filepath.Join(t.TempDir(), "mnt")
	d := startMount(t, srv, conf, mnt, t.TempDir(), "--read-only", "--chunk-size", "1MiB", "--cache-size", "8MiB",
		"--ttl", "1s", "--metrics-addr", "127.0.0.1:0")
	if !strings.Contains(d.stderr.String(), "FUSE passthrough is on") {
		t.Fatalf("passthrough is off on a kernel that has it (root, Linux %s):\n%s", kernelRelease(), d.stderr.String())
	}
	url := daemonURL(t, d, "serving metrics")
	p := filepath.Join(mnt, "ds", "f.bin")

	// A page-cached handle is open while the object becomes wholly cached: the next open must
	// not be passthrough (the kernel would fail it with EIO), yet read right.
	cached, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := cached.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "cold read", got, data)
	equalBytes(t, "second handle next to a cached one", mustRead(t, p), data)
	cached.Close()

	// Every byte is cached and the handles are closed: passthrough, also for a reopen right
	// after a close (the open waits for the release).
	before := servedBytes(t, url)
	for range 3 {
		equalBytes(t, "reopened", readUncached(t, p), data)
	}
	pt, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	if _, err := pt.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "passthrough read", got, data)
	// More opens join it; none fails.
	equalBytes(t, "second passthrough handle", readUncached(t, p), data)
	if got := servedBytes(t, url) - before; got != 0 {
		t.Fatalf("the daemon served %v bytes of reads of a wholly cached file", got)
	}
	m, err := unix.Mmap(int(pt.Fd()), 0, len(data), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap of a passthrough handle: %v", err)
	}
	equalBytes(t, "mmap", m, data)
	unix.Munmap(m)

	// Evict everything (the cache holds 8 MiB): the pinned data file keeps its bytes.
	equalBytes(t, "other", readUncached(t, filepath.Join(mnt, "ds", "other.bin")), other)
	if _, err := pt.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	equalBytes(t, "passthrough read after eviction", got, data)
	equalBytes(t, "new open after eviction joins the pinned file", readUncached(t, p), data)

	// Many readers open, read and close one file while it becomes wholly cached: each open
	// is passthrough or page-cached, never a mix the kernel refuses (EIO), and every byte is
	// right.
	race := genBytes(9, 3<<20+17)
	if err := srv.PutObject("pt-bkt", "race.bin", race, ""); err != nil {
		t.Fatal(err)
	}
	rp := filepath.Join(mnt, "ds", "race.bin")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for r := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				f, err := os.Open(rp)
				if err != nil {
					errs <- fmt.Errorf("reader %d, open %d: %w", r, i, err)
					return
				}
				got, err := io.ReadAll(f)
				f.Close()
				if err != nil || !bytes.Equal(got, race) {
					errs <- fmt.Errorf("reader %d, read %d: %d bytes, %v", r, i, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A new generation behind the mount: while a passthrough handle holds the old one, opens
	// read the old one (the kernel admits nothing else beside it); once it is closed, a new
	// open reads the new generation, never the old data file.
	next := bytes.Repeat([]byte("n"), len(data))
	if err := srv.PutObject("pt-bkt", "f.bin", next, ""); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	if _, err := os.Stat(p); err != nil { // the kernel's attributes expired: look the file up again
		t.Fatal(err)
	}
	equalBytes(t, "open beside an old-generation passthrough handle", readUncached(t, p), data)
	pt.Close()
	equalBytes(t, "new generation", readUncached(t, p), next)
	equalBytes(t, "new generation, wholly cached now", readUncached(t, p), next)
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
}

// equalBytes fails the test unless got equals want, naming the first differing byte.
func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	t.Fatalf("%s: %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

// mustRead reads the whole file (through the kernel's page cache, if it holds it).
func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}
