package integration

import (
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestFaultGracePeriod: at SIGTERM, an upload that cannot finish (the backend stalls) is given
// --grace-period; then the daemon exits non-zero, says the change was not uploaded, and leaves
// no object; while it drains it refuses new changes with EROFS. (With a working backend, TestMountSigtermUploadsPending shows the upload landing.)
func TestFaultGracePeriod(t *testing.T) {
	p := faultproxy.New(21)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--grace-period", "3s"}})

	f, err := os.Create(d.path("ds", "stuck.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("never reaches the bucket")); err != nil {
		t.Fatal(err)
	}
	p.SetRules(faultproxy.Rule{Name: "stall uploads", Match: []string{"/upload/"}, Action: faultproxy.Stall, Stall: 5 * time.Minute})

	start := time.Now()
	d.signal(syscall.SIGTERM)
	// While it drains, the daemon takes no new changes.
	if !pollUntil(10*time.Second, func() bool { return strings.Contains(d.log(), "taking no new changes") }) {
		t.Fatalf("the daemon did not start draining after SIGTERM\n%s", d.log())
	}
	if _, err := os.Create(d.path("ds", "late.txt")); errnoOf(err) != syscall.EROFS {
		t.Errorf("creating a file while the daemon drains: %v, want EROFS", err)
	}
	if err := os.Mkdir(d.path("ds", "late-dir"), 0o755); errnoOf(err) != syscall.EROFS {
		t.Errorf("mkdir while the daemon drains: %v, want EROFS", err)
	}
	select {
	case <-d.exitedCh():
	case <-time.After(45 * time.Second):
		t.Fatalf("the daemon did not give up after its 3s grace period\n%s", d.log())
	}
	took := time.Since(start)
	f.Close() // the mount is gone; whatever close says, nothing must land
	if d.exitErr() == nil {
		t.Errorf("the daemon exited 0 although a file was not uploaded\n%s", d.log())
	}
	if log := d.log(); !strings.Contains(log, "not uploaded") {
		t.Errorf("the log does not say that a change was not uploaded:\n%s", log)
	}
	if took < 3*time.Second {
		t.Errorf("the daemon exited after %v, before its grace period", took)
	}
	t.Logf("SIGTERM with a stalled upload: exit %v after %v", d.exitErr(), took.Round(time.Millisecond))
	p.Clear()
	if _, err := srv.GetObject(relBucket, "pre/stuck.txt"); err == nil {
		t.Errorf("an object appeared although its upload was abandoned")
	}
}
