package integration

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestMountListAndRead: the mount shows one directory per selected connection; `ls -l` of a
// 10,000-object directory lists everything and sends no request per entry; files read back
// byte for byte; `plxfs unmount` ends the daemon cleanly.
func TestMountListAndRead(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{"gcs-datasets"}})
	const n = 10_000
	for i := 0; i < n; i++ {
		if err := srv.PutObject("gcs-datasets", fmt.Sprintf("path1/big/f%05d", i), []byte(strings.Repeat("y", i%50)), ""); err != nil {
			t.Fatal(err)
		}
	}
	large := genBytes(1, 40<<20+123)
	if err := srv.PutObject("gcs-datasets", "path1/large.bin", large, ""); err != nil {
		t.Fatal(err)
	}
	if err := srv.PutObject("gcs-datasets", "other/secret", []byte("not for ds1"), ""); err != nil {
		t.Fatal(err)
	}
	conf := mountConf(t, map[string]string{"ds1": "gs://gcs-datasets/path1", "ds2": "gs://gcs-datasets/other", "ds3": "gs://gcs-datasets"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := startMount(t, srv, conf, mnt, t.TempDir(), "--connections", "ds1,ds2")

	// The daemon raised the kernel readahead of its mount (sequential reads in 1 MiB requests).
	var st syscall.Stat_t
	if err := syscall.Stat(mnt, &st); err != nil {
		t.Fatal(err)
	}
	ra, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil || strings.TrimSpace(string(ra)) != "4096" {
		t.Fatalf("read_ahead_kb of the mount = %q (%v), want 4096", ra, err)
	}
	if got := strings.Fields(run(t, "ls", mnt)); strings.Join(got, " ") != "ds1 ds2" {
		t.Fatalf("ls %s = %v, want [ds1 ds2]", mnt, got)
	}
	dir := filepath.Join(mnt, "ds1", "big")
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	srv.ResetCounts()
	out := run(t, "ls", "-l", dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != n+1 { // "total" + one line per entry
		t.Fatalf("ls -l printed %d lines, want %d", len(lines), n+1)
	}
	if !strings.Contains(lines[n], "f09999") || !strings.HasPrefix(lines[1], "-rw-r--r--") {
		t.Fatalf("ls -l lines look wrong: %q ... %q", lines[1], lines[n])
	}
	c := srv.Requests()
	t.Logf("ls -l of %d entries: %d requests (%d lists, %d stats, %d reads)", n, c.Total, c.Lists, c.Stats, c.MediaGets)
	if c.Stats != 0 || c.MediaGets != 0 || c.Lists > n/1000+1 {
		t.Fatalf("ls -l sent per-entry requests: %+v", c)
	}

	want := sha(large)
	got := strings.Fields(run(t, "sha256sum", filepath.Join(mnt, "ds1", "large.bin")))[0]
	if got != want {
		t.Fatalf("sha256sum through the mount %s, want %s", got, want)
	}
	if _, err := os.Stat(filepath.Join(mnt, "ds1", "..", "ds3")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an unselected connection is visible: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "ds1", "..", "other", "secret")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("objects outside the prefix are reachable: %v", err)
	}

	if res := runPlxfs(t, nil, "unmount", mnt); res.Code != 0 {
		t.Fatalf("plxfs unmount: exit %d %s", res.Code, res.Stderr)
	}
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("daemon exit after unmount: %v\n%s", err, d.stderr.String())
	}
	if ok, _ := isMounted(mnt); ok {
		t.Fatal("still mounted")
	}
}

// TestMountUnknownConnection: an unknown --connections name fails before anything is mounted.
func TestMountUnknownConnection(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	conf := mountConf(t, map[string]string{"ds1": "gs://bkt/p"})
	mnt := t.TempDir()
	res := runPlxfs(t, nil, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", t.TempDir(), "--connections", "ds1,nope", mnt)
	if res.Code == 0 || !strings.Contains(res.Stderr, "nope") {
		t.Fatalf("exit %d, stderr %q: want an error naming the unknown connection", res.Code, res.Stderr)
	}
	if ok, _ := isMounted(mnt); ok {
		t.Fatal("mounted despite the error")
	}
	res = runPlxfs(t, nil, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", t.TempDir(), filepath.Join(mnt, "missing"))
	if res.Code == 0 || !strings.Contains(res.Stderr, "does not exist") {
		t.Fatalf("missing mountpoint: exit %d, stderr %q", res.Code, res.Stderr)
	}
	conf = mountConf(t, map[string]string{"ds1": "gs://no-such-bucket/p"})
	res = runPlxfs(t, nil, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", t.TempDir(), mnt)
	if res.Code == 0 || !strings.Contains(res.Stderr, `connection "ds1"`) {
		t.Fatalf("missing bucket: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// TestMountWrites: files of 0 B, 1 B, chunk±1 and 1 GiB written through the mount read back
// with the same SHA-256, through the mount and directly from the emulator.
func TestMountWrites(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{"out"}})
	conf := mountConf(t, map[string]string{"out": "gs://out/runs"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := startMount(t, srv, conf, mnt, t.TempDir())
	const chunk = 8 << 20
	for i, n := range []int{0, 1, chunk - 1, chunk, chunk + 1} {
		data := genBytes(uint64(i), n)
		p := filepath.Join(mnt, "out", fmt.Sprintf("f%d", n))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if s, _ := fileSHA(t, p); s != sha(data) {
			t.Fatalf("%d bytes: read back through the mount differs", n)
		}
		o, err := srv.GetObject("out", fmt.Sprintf("runs/f%d", n))
		if err != nil || sha(o.Content) != sha(data) {
			t.Fatalf("%d bytes: object differs or missing: %v", n, err)
		}
	}

	// 1 GiB, streamed from a generator: the test never holds it in memory.
	big := 1 << 30
	if raceEnabled {
		big = 256 << 20
		t.Logf("race detector on: writing %d MiB instead of 1 GiB", big>>20)
	}
	p := filepath.Join(mnt, "out", "big.bin")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	r := rand.New(rand.NewPCG(42, 7))
	buf := make([]byte, 1<<20)
	for written := 0; written < big; written += len(buf) {
		fillRand(r, buf)
		h.Write(buf)
		if _, err := f.Write(buf); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	if err := f.Close(); err != nil {
		t.Fatalf("close of the 1 GiB file: %v", err)
	}
	t.Logf("close of the 1 GiB file took %v", time.Since(start))
	want := fmt.Sprintf("%x", h.Sum(nil))
	if s, n := objectSHA(t, srv, "out", "runs/big.bin"); s != want || n != int64(big) {
		t.Fatalf("the big object differs: %d bytes", n)
	}
	if s, n := fileSHA(t, p); s != want || n != int64(big) {
		t.Fatalf("the 1 GiB file read back through the mount differs (%d bytes)", n)
	}
	if parts, _ := srv.ObjectNames("out", "runs/.plxfs-tmp/"); len(parts) != 0 {
		t.Fatalf("temporary parts left: %v", parts)
	}
	if err := d.stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, d.stderr.String())
	}
}

// TestMountRealTools: cp -r, tar -x (nested dirs and symlinks), rsync -a, mv of a directory and
// rm -r behave in the mount as on a local disk.
func TestMountRealTools(t *testing.T) {
	for _, tool := range []string{"cp", "tar", "rsync", "mv", "rm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required by this test (apt-get install %s): %v", tool, tool, err)
		}
	}
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	conf := mountConf(t, map[string]string{"ds": "gs://bkt/work"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, srv, conf, mnt, t.TempDir(), "--compose-threshold", "2MiB", "--part-size", "1MiB", "--upload-chunk-size", "256KiB")

	src := filepath.Join(t.TempDir(), "src")
	files := map[string]int{"a.txt": 10, "empty": 0, "d1/b.bin": 3 << 20, "d1/d2/c": 5000, "d1/d2/d3/deep.txt": 77, "d4/e": 1}
	for name, n := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, genBytes(uint64(n), n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(src, "emptydir"), 0o755); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{"link-a": "a.txt", "d1/up": "../d4/e", "d1/d2/dangling": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(src, link)); err != nil {
			t.Fatal(err)
		}
	}
	want := readTree(t, src)
	ds := filepath.Join(mnt, "ds")

	run(t, "cp", "-r", src, filepath.Join(ds, "cp"))
	compareTrees(t, "cp -r", readTree(t, filepath.Join(ds, "cp")), want, false)

	archive := filepath.Join(t.TempDir(), "src.tar")
	run(t, "tar", "-C", src, "-cf", archive, ".")
	if err := os.Mkdir(filepath.Join(ds, "tarx"), 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "tar", "-C", filepath.Join(ds, "tarx"), "-xf", archive)
	compareTrees(t, "tar -x", readTree(t, filepath.Join(ds, "tarx")), want, true)

	run(t, "rsync", "-a", src+"/", filepath.Join(ds, "rs")+"/")
	compareTrees(t, "rsync -a", readTree(t, filepath.Join(ds, "rs")), want, true)
	// A second rsync transfers no file (sizes and mtimes match). It does set the times of
	// directories and symlinks again: plxfs does not store those (SEMANTICS.md).
	for _, line := range strings.Split(run(t, "rsync", "-a", "--itemize-changes", src+"/", filepath.Join(ds, "rs")+"/"), "\n") {
		if len(line) > 1 && line[1] == 'f' {
			t.Errorf("second rsync -a changed a file: %s", line)
		}
	}

	run(t, "mv", filepath.Join(ds, "cp"), filepath.Join(ds, "moved"))
	compareTrees(t, "mv", readTree(t, filepath.Join(ds, "moved")), want, false)
	if _, err := os.Stat(filepath.Join(ds, "cp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("cp still exists after mv: %v", err)
	}
	if left, _ := srv.ObjectNames("bkt", "work/cp/"); len(left) != 0 {
		t.Fatalf("objects left under the old name: %v", left)
	}

	run(t, "rm", "-r", filepath.Join(ds, "moved"))
	if _, err := os.Stat(filepath.Join(ds, "moved")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("moved still exists after rm -r: %v", err)
	}
	if left, _ := srv.ObjectNames("bkt", "work/moved"); len(left) != 0 {
		t.Fatalf("objects left after rm -r: %v", left)
	}
}

// TestMountKilledMidUpload: a daemon killed (SIGKILL) while a composed upload is in flight
// leaves no partial object; its temporary parts are removed by the next daemon on the same
// mountpoint, which also clears the stale mount.
func TestMountKilledMidUpload(t *testing.T) {
	proxy := faultproxy.New(1)
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{"bkt"}, Handler: proxy.Middleware})
	conf := mountConf(t, map[string]string{"ds": "gs://bkt/p"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	cacheDir := t.TempDir()
	flags := []string{"--compose-threshold", "4MiB", "--part-size", "2MiB", "--upload-chunk-size", "1MiB"}
	d := startMount(t, srv, conf, mnt, cacheDir, flags...)
	// Parts go through; the compose that would publish the object stalls.
	proxy.SetRules(faultproxy.Rule{Name: "stall-compose", Match: []string{"/compose"}, Action: faultproxy.Stall, Stall: 5 * time.Minute})

	data := genBytes(9, 20<<20)
	closed := make(chan error, 1)
	go func() {
		f, err := os.Create(filepath.Join(mnt, "ds", "ckpt.bin"))
		if err != nil {
			closed <- err
			return
		}
		if _, err := f.Write(data); err != nil {
			closed <- err
			f.Close()
			return
		}
		closed <- f.Close()
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if st := proxy.Stats(); st.ByRule["stall-compose"] > 0 || st.Faults > 0 {
			break
		}
		if parts, _ := srv.ObjectNames("bkt", "p/.plxfs-tmp/"); len(parts) >= 10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upload never reached compose:\n%s", d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	parts, _ := srv.ObjectNames("bkt", "p/.plxfs-tmp/")
	if len(parts) == 0 {
		t.Fatal("no temporary parts in flight: the test cannot show their cleanup")
	}
	d.kill()
	if err := <-closed; err == nil {
		t.Fatal("close succeeded although the daemon was killed before the upload finished")
	}
	if _, err := srv.GetObject("bkt", "p/ckpt.bin"); err == nil {
		t.Fatal("a partial object is visible after the kill")
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("expected a stale mount after the kill, statfs says %v", err)
	}

	proxy.Clear()
	d2 := startMount(t, srv, conf, mnt, cacheDir, flags...)
	if left, _ := srv.ObjectNames("bkt", "p/.plxfs-tmp/"); len(left) != 0 {
		t.Fatalf("temporary parts left after the restart: %v", left)
	}
	if _, err := os.Stat(filepath.Join(mnt, "ds", "ckpt.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the interrupted file is visible after the restart: %v", err)
	}
	if !strings.Contains(d2.stderr.String(), "removed temporary upload parts") {
		t.Errorf("the restart did not report its cleanup:\n%s", d2.stderr.String())
	}
	if err := d2.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
}

// TestMountSigtermUploadsPending: SIGTERM while a file is open with unuploaded data: the
// daemon uploads it before unmounting, and exits 0 once the file is closed.
func TestMountSigtermUploadsPending(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	conf := mountConf(t, map[string]string{"ds": "gs://bkt"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	ready := filepath.Join(t.TempDir(), "ready")
	d := startMount(t, srv, conf, mnt, t.TempDir(), "--ready-file", ready)
	if res := runPlxfs(t, nil, "wait", "--ready-file", ready, "--timeout", "30s", mnt); res.Code != 0 {
		t.Fatalf("plxfs wait --ready-file: exit %d %s", res.Code, res.Stderr)
	}
	f, err := os.Create(filepath.Join(mnt, "ds", "pending.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("written before SIGTERM")); err != nil {
		t.Fatal(err)
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if o, err := srv.GetObject("bkt", "pending.txt"); err == nil && string(o.Content) == "written before SIGTERM" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pending file was not uploaded after SIGTERM:\n%s", d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after the daemon uploaded: %v", err)
	}
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d.stderr.String())
	}
	if ok, _ := isMounted(mnt); ok {
		t.Fatal("still mounted after SIGTERM")
	}
	if _, err := os.Stat(ready); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the ready file outlived the mount: %v", err)
	}
}

// TestMountReadOnlyFlag: --read-only refuses writes with EROFS.
func TestMountReadOnlyFlag(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	if err := srv.PutObject("bkt", "x", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	conf := mountConf(t, map[string]string{"ds": "gs://bkt"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, srv, conf, mnt, t.TempDir(), "--read-only")
	err := os.WriteFile(filepath.Join(mnt, "ds", "y"), []byte("y"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Fatalf("write on a --read-only mount: %v, want EROFS", err)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, "ds", "x")); err != nil || string(b) != "x" {
		t.Fatalf("read: %q %v", b, err)
	}
}

// TestUnmountStaleAndCacheLock: `plxfs unmount` removes a mount whose daemon was killed; a
// second daemon on the same cache directory is refused before it mounts.
func TestUnmountStaleAndCacheLock(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	conf := mountConf(t, map[string]string{"ds": "gs://bkt"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	cacheDir := t.TempDir()
	d := startMount(t, srv, conf, mnt, cacheDir)

	other := t.TempDir()
	res := runPlxfs(t, nil, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", cacheDir, other)
	if res.Code == 0 || !strings.Contains(strings.ToLower(res.Stderr), "lock") {
		t.Fatalf("a second daemon on the same cache dir: exit %d, stderr %q; want a refusal that names the lock", res.Code, res.Stderr)
	}
	if ok, _ := isMounted(other); ok {
		t.Fatal("the second daemon mounted")
	}

	d.kill()
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("expected a dead mount, statfs says %v", err)
	}
	if res := runPlxfs(t, nil, "unmount", mnt); res.Code != 0 {
		t.Fatalf("plxfs unmount of a dead mount: exit %d %s", res.Code, res.Stderr)
	}
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatalf("after unmount: %v", err)
	}
	if ok, _ := isMounted(mnt); ok {
		t.Fatal("still mounted")
	}
}
