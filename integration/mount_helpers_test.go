package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store/gcs"
)

// daemon is a running `plxfs mount` process.
type daemon struct {
	t      testing.TB
	cmd    *exec.Cmd
	mnt    string
	stderr *lockedBuffer
	exited chan struct{}
	err    error // the process's exit error, after exited is closed
}

// lockedBuffer is a bytes.Buffer safe for a writer process and a reading test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// mountConf writes a connections file with the given "name: gs://bucket/prefix" pairs.
func mountConf(t testing.TB, conns map[string]string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("connections:\n")
	var names []string
	for n := range conns {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "- name: %s\n  kind: gcs\n  schema: {bucket: %q}\n", n, conns[n])
	}
	p := filepath.Join(t.TempDir(), "connections.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startMount runs `plxfs mount` against srv (an in-process emulator.Server, or a gcsProc)
// with conf, mounting at mnt (created if needed) with its cache under cacheDir, and waits until
// the mount is ready. The daemon is stopped (SIGTERM, then SIGKILL and a lazy unmount) when the
// test ends.
func startMount(t testing.TB, srv interface{ URL() string }, conf, mnt, cacheDir string, extra ...string) *daemon {
	t.Helper()
	if err := os.MkdirAll(mnt, 0o755); err != nil && !isENOTCONN(err) {
		t.Fatal(err)
	}
	args := append([]string{"mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", cacheDir, "--log-level", "info"}, extra...)
	args = append(args, mnt)
	cmd := exec.Command(plxfsBin, args...)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	d := &daemon{t: t, cmd: cmd, mnt: mnt, stderr: &lockedBuffer{}, exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = d.stderr, d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		d.err = cmd.Wait()
		close(d.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-d.exited:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-d.exited
		}
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.stderr.String())
		}
	})
	// Ready once mounted and tuned: the daemon logs "mounted" after it raised the readahead
	// window and probed for passthrough.
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ok, _ := isMounted(mnt); ok && strings.Contains(d.stderr.String(), "msg=mounted") {
			return d
		}
		select {
		case <-d.exited:
			t.Fatalf("plxfs mount exited early (%v):\n%s", d.err, d.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mount not ready after 60s:\n%s", d.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func isENOTCONN(err error) bool { return err != nil && strings.Contains(err.Error(), "not connected") }

// stop sends SIGTERM and waits for the daemon to exit; it returns the exit error.
func (d *daemon) stop() error {
	d.t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	return d.wait(60 * time.Second)
}

// wait waits for the daemon to exit by itself.
func (d *daemon) wait(timeout time.Duration) error {
	d.t.Helper()
	select {
	case <-d.exited:
		return d.err
	case <-time.After(timeout):
		d.t.Fatalf("the daemon did not exit within %v:\n%s", timeout, d.stderr.String())
	}
	return nil
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *daemon) kill() {
	d.cmd.Process.Kill()
	<-d.exited
}

// objectSHA hashes an object read from the emulator through the Go client, streaming (a
// 1 GiB object is never held in memory).
func objectSHA(t testing.TB, srv *emulator.Server, bucket, name string) (string, int64) {
	t.Helper()
	ctx := context.Background()
	client, err := gcs.NewClient(ctx, gcs.Options{Endpoint: srv.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	r, err := client.Bucket(bucket).NewRangeReader(ctx, name, 0, 0, -1)
	if err != nil {
		t.Fatalf("read gs://%s/%s: %v", bucket, name, err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatalf("read gs://%s/%s: %v", bucket, name, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

// genBytes returns n deterministic pseudo-random bytes for seed.
func genBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	fillRand(rand.New(rand.NewPCG(seed, 7)), b)
	return b
}

func fillRand(r *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

func sha(b []byte) string { s := sha256.Sum256(b); return fmt.Sprintf("%x", s) }

// fileSHA hashes a file.
func fileSHA(t testing.TB, p string) (string, int64) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), n
}

// run runs a command (not on the mount: its binary and working directory are local) and fails
// the test with its output if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// treeEntry describes one path of a tree for comparison.
type treeEntry struct {
	kind   string // "dir", "file", "symlink"
	sum    string // content SHA-256 or symlink target
	mtime  time.Time
	length int64
}

// readTree walks root (without following symlinks) and describes every path below it.
func readTree(t *testing.T, root string) map[string]treeEntry {
	t.Helper()
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = treeEntry{kind: "symlink", sum: target}
		case fi.IsDir():
			out[rel] = treeEntry{kind: "dir"}
		default:
			s, n := fileSHA(t, p)
			out[rel] = treeEntry{kind: "file", sum: s, length: n, mtime: fi.ModTime()}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
	return out
}

// compareTrees fails unless got has exactly want's paths, kinds and contents (and, with
// mtimes, the files' modification times to the second).
func compareTrees(t *testing.T, what string, got, want map[string]treeEntry, mtimes bool) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: %s missing", what, p)
			continue
		}
		if g.kind != w.kind || g.sum != w.sum || g.length != w.length {
			t.Errorf("%s: %s is %+v, want %+v", what, p, g, w)
		}
		if mtimes && w.kind == "file" && !g.mtime.Truncate(time.Second).Equal(w.mtime.Truncate(time.Second)) {
			t.Errorf("%s: %s mtime %v, want %v", what, p, g.mtime, w.mtime)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: unexpected %s", what, p)
		}
	}
}
