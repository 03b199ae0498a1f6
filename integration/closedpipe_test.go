package integration

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// TestDaemonOutlivesClosedOutput is `plxfs mount ... 2>&1 | tee log` (and the same with plxfs
// demo) stopped with Ctrl-C, where tee dies first: the daemon's stdout and stderr are a pipe
// whose reader is gone before the daemon logs again. The daemon must keep serving, and on
// SIGTERM upload what is pending, unmount, remove its status socket, ready file and temporary
// directories, and exit 0.
func TestDaemonOutlivesClosedOutput(t *testing.T) {
	t.Run("mount", func(t *testing.T) {
		srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
		conf := mountConf(t, map[string]string{"ds": "gs://bkt"})
		mnt := filepath.Join(t.TempDir(), "mnt")
		if err := os.MkdirAll(mnt, 0o755); err != nil {
			t.Fatal(err)
		}
		cacheDir, ready := t.TempDir(), filepath.Join(t.TempDir(), "ready")
		p := startPiped(t, mnt, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", cacheDir,
			"--ready-file", ready, "--log-level", "debug", mnt)
		p.closeReader()
		p.writeAndRead(filepath.Join(mnt, "ds", "after-close.txt"), "written after the log reader left")
		p.stopCleanly()
		if o, err := srv.GetObject("bkt", "after-close.txt"); err != nil || string(o.Content) != "written after the log reader left" {
			t.Errorf("after-close.txt in the bucket: %q, %v", o.Content, err)
		}
		if _, err := os.Stat(ready); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the ready file is left behind: %v", err)
		}
		if left := filesUnder(t, filepath.Join(cacheDir, "staging")); len(left) > 0 {
			t.Errorf("staged files left behind: %v", left)
		}
	})
	t.Run("demo", func(t *testing.T) {
		mnt := filepath.Join(t.TempDir(), "mnt")
		p := startPiped(t, mnt, "--log-level", "debug", "demo", "--files", "20", "--large-mib", "1", mnt)
		p.closeReader()
		p.writeAndRead(filepath.Join(mnt, "outputs", "after-close.txt"), "written after the log reader left")
		p.stopCleanly()
		if left := filesUnder(t, p.tmp); len(left) > 0 {
			t.Errorf("the demo left its temporary files behind in $TMPDIR: %v", left)
		}
	})
}

// piped is a daemon whose stdout and stderr are one pipe read by the test.
type piped struct {
	t        *testing.T
	cmd      *exec.Cmd
	mnt      string
	tmp, run string // its $TMPDIR and $XDG_RUNTIME_DIR
	r        *os.File
	log      *lockedBuffer // what was read from the pipe before it was closed
	copied   chan struct{}
	exited   chan struct{}
	err      error
}

// startPiped starts plxfs with args, stdout and stderr on a pipe, and waits until mnt is ready.
func startPiped(t *testing.T, mnt string, args ...string) *piped {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &piped{t: t, mnt: mnt, tmp: t.TempDir(), run: t.TempDir(), r: r, log: &lockedBuffer{},
		copied: make(chan struct{}), exited: make(chan struct{})}
	p.cmd = exec.Command(plxfsBin, args...)
	p.cmd.SysProcAttr = dieWithTest()
	p.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + p.tmp, "XDG_RUNTIME_DIR=" + p.run}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the daemon holds the only write end
	go func() { io.Copy(p.log, r); close(p.copied) }()
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			p.cmd.Process.Kill()
			<-p.exited
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
		if t.Failed() {
			t.Logf("daemon output before the pipe closed:\n%s", p.log.String())
		}
	})
	if res := runPlxfs(t, nil, "wait", "--timeout", "60s", mnt); res.Code != 0 {
		t.Fatalf("plxfs wait: exit %d %s\ndaemon output:\n%s", res.Code, res.Stderr, p.log.String())
	}
	return p
}

// closeReader closes the read end, as tee does when Ctrl-C reaches it first.
func (p *piped) closeReader() {
	p.r.Close()
	<-p.copied
}

// writeAndRead writes a file through the mount (the upload is logged at debug level, to the
// closed pipe) and reads it back, which only a live daemon answers.
func (p *piped) writeAndRead(path, content string) {
	p.t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatalf("writing through the mount after the log reader left: %v", err)
	}
	if got, err := os.ReadFile(path); err != nil || string(got) != content {
		p.t.Fatalf("reading back through the mount after the log reader left: %q, %v", got, err)
	}
	if ok, err := isMounted(p.mnt); !ok {
		p.t.Fatalf("the mount is gone after the daemon logged to a closed pipe: %v", err)
	}
}

// stopCleanly sends SIGTERM and checks that the daemon exits 0, unmounted, with its status
// socket removed.
func (p *piped) stopCleanly() {
	p.t.Helper()
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(60 * time.Second):
		p.t.Fatal("the daemon did not exit within 60s of SIGTERM")
	}
	if p.err != nil {
		p.t.Errorf("exit after SIGTERM with its output closed: %v, want status 0", p.err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(p.mnt, &st); err != nil {
		p.t.Errorf("mountpoint after exit: %v (a stale mount is left)", err)
	} else if st.Type == 0x65735546 {
		p.t.Errorf("%s is still mounted after the daemon exited", p.mnt)
	}
	if left := filesUnder(p.t, p.run); len(left) > 0 {
		p.t.Errorf("status socket left behind: %v", left)
	}
}

// filesUnder lists the non-directories under dir (relative names); a missing dir has none.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return out
}
