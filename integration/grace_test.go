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

	f, start := drainWithStalledUpload(t, d, p, "stuck.txt")
	// While it drains, the daemon takes no new changes.
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

// TestFaultDrainRefusesWritesToExistingFiles: while the daemon drains after SIGTERM (an upload
// is pending), opening an existing file for writing or truncating it is refused with EROFS,
// as SEMANTICS.md promises (it was EIO), reads of it still work, and the object is untouched.
func TestFaultDrainRefusesWritesToExistingFiles(t *testing.T) {
	p := faultproxy.New(22)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	const old = "existing content"
	if err := srv.PutObject(relBucket, "pre/existing.txt", []byte(old), ""); err != nil {
		t.Fatal(err)
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--grace-period", "3s"}})
	existing := d.path("ds", "existing.txt")
	if got, err := os.ReadFile(existing); err != nil || string(got) != old {
		t.Fatalf("read before SIGTERM: %q, %v", got, err)
	}

	f, _ := drainWithStalledUpload(t, d, p, "pending.txt")

	for _, flag := range []int{os.O_WRONLY, os.O_RDWR, os.O_WRONLY | os.O_TRUNC, os.O_WRONLY | os.O_APPEND} {
		w, err := os.OpenFile(existing, flag, 0)
		if err == nil {
			w.Close()
		}
		if errnoOf(err) != syscall.EROFS {
			t.Errorf("open(existing, %#o) while draining: %v, want EROFS", flag, err)
		}
	}
	for _, size := range []int64{0, 4, 100} {
		if err := os.Truncate(existing, size); errnoOf(err) != syscall.EROFS {
			t.Errorf("truncate(existing, %d) while draining: %v, want EROFS", size, err)
		}
	}
	if err := os.Chmod(existing, 0o600); errnoOf(err) != syscall.EROFS {
		t.Errorf("chmod(existing) while draining: %v, want EROFS", err)
	}
	if err := os.Chtimes(existing, time.Now(), time.Now()); errnoOf(err) != syscall.EROFS {
		t.Errorf("utimensat(existing) while draining: %v, want EROFS", err)
	}
	if got, err := os.ReadFile(existing); err != nil || string(got) != old {
		t.Errorf("read while draining: %q, %v", got, err)
	}

	select {
	case <-d.exitedCh():
	case <-time.After(45 * time.Second):
		t.Fatalf("the daemon did not give up after its 3s grace period\n%s", d.log())
	}
	f.Close()
	p.Clear()
	o, err := srv.GetObject(relBucket, "pre/existing.txt")
	if err != nil || string(o.Content) != old {
		t.Errorf("the existing object after the drain: %q, %v", o.Content, err)
	}
}

// drainWithStalledUpload writes a new file name of connection ds and keeps it open, stalls
// every upload at the proxy, sends SIGTERM and waits until the daemon drains (its upload of
// the file cannot finish). It returns the open file and the time of the signal.
func drainWithStalledUpload(t *testing.T, d *relDaemon, p *faultproxy.Proxy, name string) (*os.File, time.Time) {
	t.Helper()
	f, err := os.Create(d.path("ds", name))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("never reaches the bucket")); err != nil {
		t.Fatal(err)
	}
	p.SetRules(faultproxy.Rule{Name: "stall uploads", Match: []string{"/upload/"}, Action: faultproxy.Stall, Stall: 5 * time.Minute})
	start := time.Now()
	d.signal(syscall.SIGTERM)
	if !pollUntil(10*time.Second, func() bool { return strings.Contains(d.log(), "taking no new changes") }) {
		t.Fatalf("the daemon did not start draining after SIGTERM\n%s", d.log())
	}
	return f, start
}
