package integration

// Crashes: the mount daemon is SIGKILLed in the middle of chunk fetches and of uploads, then
// restarted on the same mountpoint and cache dir.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// cacheDataFiles returns the cache's data files (one per cached object generation, sparse),
// under DIR/chunks/v2/<hh>/.
func cacheDataFiles(cacheDir string) []string {
	files, _ := filepath.Glob(filepath.Join(cacheDir, "chunks", "v2", "*", "*.data"))
	return files
}

// allocated is the disk space a file occupies (its data files are sparse).
func allocated(path string) int64 {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0
	}
	return st.Blocks * 512
}

// dataFileOf returns the data file of the object, found by its index file, which names it.
func dataFileOf(cacheDir, object string) string {
	for _, p := range cacheDataFiles(cacheDir) {
		idx, err := os.ReadFile(strings.TrimSuffix(p, ".data") + ".idx")
		if err == nil && bytes.Contains(idx, []byte(object)) {
			return p
		}
	}
	return ""
}

// partialChunk reports whether the data file holds part of a 1 MiB chunk beyond what the
// objects' short last chunks explain (under 64 KiB here): a fill in progress, or one a crash
// cut short and nobody released.
func partialChunk(path string) bool { return allocated(path)%(1<<20) > 64<<10 }

// flipByte flips the byte at off of the file.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// TestCrashDuringReads kills the daemon (SIGKILL) while chunk fetches are in flight, three
// times, restarting it on the same mountpoint and cache dir each time: the stale mountpoint is
// replaced, no half-written chunk is left, the complete ones are re-indexed and served without
// a refetch, damaged ones are refetched, and every byte read is the object's.
func TestCrashDuringReads(t *testing.T) {
	tr := &trickle{piece: 16 << 10, pause: 15 * time.Millisecond}
	p := faultproxy.New(21)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: mwChain(p.Middleware, tr.Middleware)})
	objs := map[string][]byte{"warm.bin": randData(30, 4<<20+77)}
	for i := range 12 {
		objs[fmt.Sprintf("c%02d.bin", i)] = randData(uint64(31+i), 3<<20+i*1001)
	}
	for name, data := range objs {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t),
		flags: []string{"--chunk-size", "1MiB", "--cache-size", "128MiB", "--readahead", "2"}})
	if err := readVerified(d.path("ds", "warm.bin"), objs["warm.bin"]); err != nil {
		t.Fatal(err)
	}
	warm := dataFileOf(d.cacheDir, "pre/warm.bin")
	if got := allocated(warm); got < 4<<20+77 {
		t.Fatalf("warm.bin's data file %q holds %d bytes after a whole read, want all %d", warm, got, 4<<20+77)
	}

	var reads tally
	survived := 0
	for cycle := range 3 {
		tr.on.Store(true)
		var wg sync.WaitGroup
		names := []string{"warm.bin"}
		for i := range 4 {
			name := fmt.Sprintf("c%02d.bin", cycle*4+i)
			names = append(names, name)
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := readVerified(d.path("ds", name), objs[name])
				if isWrong(err) {
					reads.bad("cycle %d: %v", cycle, err)
				} else if err != nil {
					reads.add("interrupted by the kill")
				} else {
					reads.add("verified before the kill")
				}
			}()
		}
		// Kill while chunk fetches are in flight. A fetch fills memory, not the cache file: a
		// chunk reaches the disk whole, from memory, behind the reader (and a kill in the
		// middle of that write leaves bytes without a record, punched out at the next start).
		halfWritten := func() (partial []string) {
			for _, p := range cacheDataFiles(d.cacheDir) {
				if partialChunk(p) {
					partial = append(partial, p)
				}
			}
			return partial
		}
		if !pollUntil(30*time.Second, func() bool { return tr.active.Load() > 0 }) {
			t.Fatalf("cycle %d: no fetch was ever in flight (trickled responses: %d)", cycle, tr.active.Load())
		}
		d.kill()
		wg.Wait()
		if !isStale(d.mnt) {
			t.Fatalf("cycle %d: after SIGKILL the mountpoint is not stale (ENOTCONN expected)", cycle)
		}
		damaged := 0
		if cycle == 0 {
			// Damage two complete chunks of warm.bin the way a power loss could: a data byte
			// flipped in each.
			flipByte(t, warm, 100)
			flipByte(t, warm, 2<<20+100)
			damaged = 2
		}
		tr.on.Store(false)

		d.restart()
		survived++
		checkStaleReplaced(t, fmt.Sprintf("cycle %d", cycle), d)
		if partial := halfWritten(); len(partial) != 0 {
			t.Errorf("cycle %d: bytes of half-written chunks survive the restart: %q", cycle, partial)
		}
		// The complete chunks were re-indexed: warm.bin is read from the cache, except the
		// chunks that were damaged, which are refetched.
		srv.ResetCounts()
		if err := readVerified(d.path("ds", "warm.bin"), objs["warm.bin"]); err != nil {
			t.Fatalf("cycle %d: warm.bin after the restart: %v", cycle, err)
		}
		if got := len(srv.Requests().ReadsOf(relBucket, "pre/warm.bin")); got != damaged {
			t.Errorf("cycle %d: warm.bin needed %d fetches after the restart, want %d (the damaged chunks only): the cache was not re-indexed", cycle, got, damaged)
		}
		for _, name := range names {
			if err := readVerified(d.path("ds", name), objs[name]); err != nil {
				reads.bad("cycle %d: %s after the restart: %v", cycle, name, err)
			} else {
				reads.add("verified after a restart")
			}
		}
	}
	t.Logf("crashes survived during reads: %d; reads: %v", survived, reads.String())
	reads.failIfBad(t, "reads around crashes")
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}

// checkStaleReplaced checks, after a restart on the mountpoint of a killed daemon, that the
// stale mount was detected and removed (not hidden under the new one) and that the daemon
// said so.
func checkStaleReplaced(t *testing.T, what string, d *relDaemon) {
	t.Helper()
	if n := mountsAt(d.mnt); n != 1 {
		t.Errorf("%s: %d mounts are stacked at %s after the restart, want 1: the stale mount of the killed daemon was "+
			"not detached but mounted over (stat(2) of a FUSE root is answered from the kernel's attribute cache even after "+
			"the daemon died; only statfs(2) or a request that reaches the daemon reports ENOTCONN)", what, n, d.mnt)
	}
	if !strings.Contains(d.lastRunLog(), "daemon is gone") {
		t.Errorf("%s: the restarted daemon did not report the stale mountpoint it replaced (\"daemon is gone\"); log:\n%s", what, d.lastRunLog())
	}
}

// lastRunLog is the log of the daemon's current (last) run.
func (d *relDaemon) lastRunLog() string {
	d.mu.Lock()
	runs := d.runs
	d.mu.Unlock()
	data, _ := os.ReadFile(filepath.Join(d.logDir, fmt.Sprintf("run%d.log", runs)))
	return string(data)
}

// TestCrashDuringWrites kills the daemon (SIGKILL) in the middle of uploads: a composed upload
// (parts uploaded, compose pending), a resumable upload (some chunks sent), an overwrite of an
// existing object, and a file still being written. The writer never hears success, the
// bucket never holds a partial object (an overwritten object keeps its old bytes), and the
// restarted daemon replaces the stale mountpoint, deletes the temporary parts and uploads again.
func TestCrashDuringWrites(t *testing.T) {
	p := faultproxy.New(22)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	old := randData(40, 2<<20+3)
	if err := srv.PutObject(relBucket, "pre/keep.bin", old, ""); err != nil {
		t.Fatal(err)
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{
		"--chunk-size", "1MiB", "--cache-size", "64MiB",
		"--upload-chunk-size", "256KiB", "--compose-threshold", "1MiB", "--part-size", "256KiB", "--upload-workers", "2"}})

	stall := func(match ...string) faultproxy.Rule {
		return faultproxy.Rule{Name: "stall", Match: match, Action: faultproxy.Stall, Stall: 10 * time.Minute}
	}
	cases := []struct {
		name     string
		object   string
		data     []byte
		rule     faultproxy.Rule // what hangs while the daemon is killed
		parts    bool            // temporary parts exist when the daemon dies
		old      []byte          // the object's bytes before (nil: none)
		noUpload bool            // killed before close: the data is still being written
	}{
		{name: "composed upload, compose pending", object: "big.bin", data: randData(41, 3<<20+5), rule: stall("/compose"), parts: true},
		{name: "resumable upload, third chunk pending", object: "mid.bin", data: randData(42, 900_000),
			rule: faultproxy.Rule{Name: "stall", Match: []string{"upload_id="}, Action: faultproxy.Stall, Stall: 10 * time.Minute, Skip: 2}},
		{name: "overwrite, compose pending", object: "keep.bin", data: randData(43, 3<<20+9), rule: stall("/compose"), parts: true, old: old},
		{name: "file still being written", object: "open.bin", data: randData(44, 500_000), noUpload: true},
	}
	survived := 0
	for _, tc := range cases {
		func() {
			p.Clear()
			if !tc.noUpload {
				p.SetRules(tc.rule)
			}
			p.ResetStats()
			closed := make(chan error, 1)
			path := d.path("ds", tc.object)
			if tc.noUpload {
				f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
				if err != nil {
					t.Fatalf("%s: create: %v; log:\n%s", tc.name, err, d.lastRunLog())
				}
				if _, err := f.Write(tc.data[:len(tc.data)/2]); err != nil {
					t.Fatalf("%s: write: %v", tc.name, err)
				}
				d.kill()
				_, werr := f.Write(tc.data[len(tc.data)/2:])
				cerr := f.Close()
				if werr == nil && cerr == nil {
					t.Errorf("%s: write and close after the daemon died both succeeded", tc.name)
				}
			} else {
				go func() { closed <- writeThroughMount(path, tc.data, false) }()
				if !pollUntil(60*time.Second, func() bool { return p.Stats().ByRule["stall"] > 0 }) {
					t.Fatalf("%s: the upload never reached the stalled request; log:\n%s", tc.name, d.log())
				}
				parts, _ := srv.ObjectNames(relBucket, "pre/.plxfs-tmp/")
				if tc.parts && len(parts) == 0 {
					t.Fatalf("%s: no temporary part exists while the compose hangs; the test proves nothing", tc.name)
				}
				d.kill()
				select {
				case err := <-closed:
					if err == nil {
						t.Fatalf("%s: close returned success although the daemon was killed before the upload finished", tc.name)
					}
					t.Logf("%s: the writer heard: %v", tc.name, err)
				case <-time.After(30 * time.Second):
					t.Fatalf("%s: close still blocked 30s after the daemon was killed", tc.name)
				}
			}
			obj, err := srv.GetObject(relBucket, "pre/"+tc.object)
			switch {
			case tc.old == nil && err == nil:
				t.Errorf("%s: an object (%d bytes) appeared although the upload never finished", tc.name, len(obj.Content))
			case tc.old != nil && (err != nil || !bytes.Equal(obj.Content, tc.old)):
				t.Errorf("%s: the overwritten object lost its old bytes: %v, %d bytes", tc.name, err, len(obj.Content))
			}
			if !isStale(d.mnt) {
				t.Fatalf("%s: after SIGKILL the mountpoint is not stale (ENOTCONN expected)", tc.name)
			}

			p.Clear()
			d.restart()
			survived++
			log := d.lastRunLog()
			if !strings.Contains(log, "daemon is gone") {
				t.Errorf("%s: the restarted daemon did not report the stale mountpoint it replaced; log:\n%s", tc.name, log)
			}
			if parts, _ := srv.ObjectNames(relBucket, "pre/.plxfs-tmp/"); len(parts) != 0 {
				t.Errorf("%s: temporary parts left after the restart: %q", tc.name, parts)
			} else if tc.parts && !strings.Contains(log, "removed temporary upload parts") {
				t.Errorf("%s: the parts are gone but the restarted daemon did not say it removed them; log:\n%s", tc.name, log)
			}
			// The mount reads the object as the bucket has it, and uploads again.
			if tc.old != nil {
				if err := readVerified(path, tc.old); err != nil {
					t.Errorf("%s: old object through the restarted mount: %v", tc.name, err)
				}
			} else if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s: stat %s after the restart: %v, want ENOENT", tc.name, tc.object, err)
			}
			if err := writeThroughMount(path, tc.data, true); err != nil {
				t.Fatalf("%s: write after the restart: %v", tc.name, err)
			}
			obj, err = srv.GetObject(relBucket, "pre/"+tc.object)
			if err != nil || !bytes.Equal(obj.Content, tc.data) {
				t.Errorf("%s: object after the rewrite: %v, %d bytes, want %d", tc.name, err, len(obj.Content), len(tc.data))
			}
			if err := readVerified(path, tc.data); err != nil {
				t.Errorf("%s: reading back after the rewrite: %v", tc.name, err)
			}
		}()
	}
	t.Logf("crashes survived during writes: %d", survived)
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}

// TestCrashIdleRestart kills an idle daemon right after a stat of its mountpoint, as a
// container restart after a crash would, and restarts it at once: the stale mount must be
// detected and replaced even while the kernel still holds the root's attributes.
func TestCrashIdleRestart(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}})
	data := randData(50, 100_000)
	if err := srv.PutObject(relBucket, "pre/a.bin", data, ""); err != nil {
		t.Fatal(err)
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t)})
	for cycle := range 2 {
		if _, err := os.Stat(d.mnt); err != nil {
			t.Fatal(err)
		}
		d.kill()
		if !isStale(d.mnt) {
			t.Fatalf("cycle %d: after SIGKILL statfs does not report ENOTCONN", cycle)
		}
		d.restart()
		checkStaleReplaced(t, fmt.Sprintf("cycle %d", cycle), d)
		if err := readVerified(d.path("ds", "a.bin"), data); err != nil {
			t.Fatalf("cycle %d: read after the restart: %v", cycle, err)
		}
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
	if n := mountsAt(d.mnt); n != 0 {
		t.Errorf("%d mounts left at %s after the daemon stopped", n, d.mnt)
	}
}
