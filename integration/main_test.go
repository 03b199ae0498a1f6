// Package integration tests the built plxfs binary end to end: real processes, real FUSE
// mounts, a real fake-gcs-server (in this test process, over TCP, for the tests, which count
// its requests; in its own process for the benchmarks, see gcsProc).
package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// plxfsBin is the binary under test, built once by TestMain.
var plxfsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "plxfs-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	plxfsBin = filepath.Join(dir, "plxfs")
	build := exec.Command("go", "build", "-o", plxfsBin, "../cmd/plxfs")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building plxfs:", err)
		os.Exit(1)
	}
	code := m.Run()
	removeToolBins()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startEmulator starts fake-gcs-server with the given buckets; it stops with the test.
func startEmulator(t *testing.T, opts emulator.Options) *emulator.Server {
	t.Helper()
	srv, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv
}

// result is one finished run of the binary.
type result struct {
	Code           int
	Stdout, Stderr string
}

// runPlxfs runs the binary with args and a clean environment (plus env), and waits for it.
func runPlxfs(t *testing.T, env []string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, plxfsBin, args...)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{Stdout: out.String(), Stderr: errb.String()}
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatalf("running plxfs %v: %v", args, err)
		}
		res.Code = ee.ExitCode()
	}
	return res
}

// dieWithTest makes a child process (a daemon above all) receive SIGKILL when the test process
// dies, so that a test that times out or panics never leaves a daemon holding a mount or the
// test runner's output open.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// writeFile writes a file under t.TempDir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
