package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// TestWaitTimesOut: plxfs wait exits 1 when nothing is mounted before --timeout, 2 on usage errors.
func TestWaitTimesOut(t *testing.T) {
	dir := t.TempDir()
	start := time.Now()
	res := runPlxfs(t, nil, "wait", dir, "--timeout", "500ms")
	if res.Code != 1 || !strings.Contains(res.Stderr, "not ready") {
		t.Errorf("wait on a plain directory: exit %d, stderr %q; want 1 and \"not ready\"", res.Code, res.Stderr)
	}
	if took := time.Since(start); took < 500*time.Millisecond {
		t.Errorf("wait gave up after %v, before its timeout", took)
	}
	res = runPlxfs(t, nil, "wait", "--timeout", "200ms", "--ready-file", filepath.Join(dir, "ready"), dir)
	if res.Code != 1 {
		t.Errorf("wait for a missing ready file: exit %d, want 1", res.Code)
	}
	if res := runPlxfs(t, nil, "wait"); res.Code != 2 {
		t.Errorf("wait without a mountpoint: exit %d, want 2 (usage)", res.Code)
	}
}

// TestMountExitOnFile: on clusters without native sidecars, the main container writes a sentinel
// file when it is done; the daemon then uploads what is pending, unmounts and exits 0.
func TestMountExitOnFile(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	conf := mountConf(t, map[string]string{"ds": "gs://bkt"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	done := filepath.Join(t.TempDir(), "done")
	d := startMount(t, srv, conf, mnt, t.TempDir(), "--exit-on-file", done)
	if err := os.WriteFile(filepath.Join(mnt, "ds", "result.txt"), []byte("42"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(done, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.wait(30 * time.Second); err != nil {
		t.Fatalf("daemon after the exit file appeared: %v\n%s", err, d.stderr.String())
	}
	if ok, _ := isMounted(mnt); ok {
		t.Error("still mounted after the exit file appeared")
	}
	if o, err := srv.GetObject("bkt", "result.txt"); err != nil || string(o.Content) != "42" {
		t.Errorf("result.txt in the bucket: %q, %v", o.Content, err)
	}
}
