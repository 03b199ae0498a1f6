package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDemo runs the README's first command as a user would (plxfs demo MOUNTPOINT), lists and
// reads the mount, writes to the outputs connection, then stops it with Ctrl-C.
func TestDemo(t *testing.T) {
	mnt := filepath.Join(t.TempDir(), "mnt")
	cmd := exec.Command(plxfsBin, "demo", "--files", "60", "--large-mib", "9", mnt)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	stderr := &lockedBuffer{} // read while the demo writes
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed once the process has exited; waitErr is then set
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		default:
		}
		cmd.Process.Kill()
		syscall.Unmount(mnt, syscall.MNT_DETACH)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Errorf("the demo process did not exit after SIGKILL")
		}
		t.Logf("demo stderr:\n%s", stderr.String())
	})

	if res := runPlxfs(t, nil, "wait", "--timeout", "30s", mnt); res.Code != 0 {
		t.Fatalf("plxfs wait: exit %d %s\ndemo stderr:\n%s", res.Code, res.Stderr, stderr.String())
	}
	// Its hints work from any directory: the binary's absolute path (not on $PATH here).
	if !strings.Contains(stderr.String(), "\n  "+plxfsBin+" ls --config ") {
		t.Errorf("the demo's hints do not name %s:\n%s", plxfsBin, stderr.String())
	}
	entries, err := os.ReadDir(mnt)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"dataset", "outputs"}) {
		t.Errorf("mount root = %v, want [dataset outputs]", names)
	}
	labels, err := os.ReadFile(filepath.Join(mnt, "dataset", "labels.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(string(labels), "\n"); lines != 61 {
		t.Errorf("labels.csv has %d lines, want 61 (header + 60 files)", lines)
	}
	st, err := os.Stat(filepath.Join(mnt, "dataset", "large", "weights.bin"))
	if err != nil || st.Size() != 9<<20 {
		t.Errorf("large file: %v, size %d, want %d", err, st.Size(), 9<<20)
	}
	if err := os.WriteFile(filepath.Join(mnt, "outputs", "note.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatalf("writing to the outputs connection: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "outputs", "note.txt")); err != nil || string(got) != "hello" {
		t.Errorf("read back %q, %v", got, err)
	}

	cmd.Process.Signal(os.Interrupt)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("demo exited with %v after Ctrl-C\n%s", waitErr, stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("demo did not exit after Ctrl-C\n%s", stderr.String())
	}
	if ok, _ := isMounted(mnt); ok {
		t.Errorf("%s is still mounted after the demo stopped", mnt)
	}
}

// isMounted reports whether dir is a FUSE mount.
func isMounted(dir string) (bool, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return false, err
	}
	return st.Type == 0x65735546, nil
}
