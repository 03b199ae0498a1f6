package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/transfer"
)

func TestCheckCommand(t *testing.T) {
	app := newApp()
	for _, tc := range []struct {
		args []string
		want string // "" for no error
	}{
		{[]string{"plxfs", "ls", "ds:"}, ""},
		{[]string{"plxfs", "--config", "c.yaml", "ls"}, ""},
		{[]string{"plxfs", "--config", "bogus", "ls"}, ""}, // a flag's value is not a command
		{[]string{"plxfs", "bogus"}, "unknown command bogus; commands: connections, mount"},
		{[]string{"plxfs", "moutn", "/mnt"}, "unknown command moutn; did you mean mount?; see plxfs --help"},
		{[]string{"plxfs", "up", "a", "ds:"}, "did you mean upload?"},
		{[]string{"plxfs", "connections", "lst"}, "did you mean list?; see plxfs connections --help"},
		{[]string{"plxfs", "help", "dowload"}, "did you mean download?"},
		{[]string{"plxfs", "help"}, ""},
		{[]string{"plxfs", "--", "bogus"}, ""},
	} {
		err := checkCommand(app, tc.args)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.args, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !isUsageError(err)):
			t.Errorf("%q: %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCLI(t, "version")
	code2, out2, _ := runCLI(t, "--version")
	if code != 0 || code2 != 0 || out != out2 || !strings.HasPrefix(out, "plxfs ") || strings.Contains(out, " dev ") {
		t.Errorf("version: %d %q; --version: %d %q", code, out, code2, out2)
	}
	old := version
	defer func() { version = old }()
	version = "v1.2.3"
	if got := buildVersion(); got != "v1.2.3" {
		t.Errorf("stamped version: %q", got)
	}
}

func TestDownloadHelpListsDownloadFlags(t *testing.T) {
	code, out, _ := runCLI(t, "download", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--raw", "--part-size", "--force, -f", "--workers"} {
		if !strings.Contains(out, want) {
			t.Errorf("download --help lacks %s", want)
		}
	}
	for _, bad := range []string{"--compose-threshold", "--upload-chunk-size"} {
		if strings.Contains(out, bad) {
			t.Errorf("download --help lists the upload flag %s", bad)
		}
	}
	_, out, _ = runCLI(t, "upload", "--help")
	if strings.Contains(out, "--raw") || !strings.Contains(out, "--upload-chunk-size") {
		t.Errorf("upload --help:\n%s", out)
	}
	_, out, _ = runCLI(t, "--help")
	if !strings.Contains(out, "Exit codes, for every command") || strings.Contains(out, "--polyaxonfile value, -f") {
		t.Errorf("plxfs --help:\n%s", out)
	}
}

func TestStorageUsageErrors(t *testing.T) {
	e := newStorageEnv(t)
	e.put(t, "pre/d/a", "a")
	src := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(src, []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"upload chunk not a multiple of 256KiB", []string{"upload", "--upload-chunk-size", "300KiB", src, "ds:"}, 2, "multiple of 256KiB"},
		{"bad memory limit", []string{"upload", "--memory-limit", "lots", src, "ds:"}, 2, "--memory-limit"},
		{"upload -f", []string{"upload", "-f", src, "ds:"}, 0, "uploaded 1 files"},
		{"init unknown connection", []string{"init", "--connection", "nope", "--path", t.TempDir()}, 2, `connection "nope": not found`},
		{"init unknown connection, ignore errors", []string{"init", "--ignore-errors", "--connection", "nope", "--path", t.TempDir()}, 2, "not found"},
		{"rm -f pf.yaml", []string{"rm", "-r", "ds:d", "-f", "pf.yaml"}, 2, "-f is --force"},
		{"download -r into a file", []string{"download", "-r", "ds:d", src}, 2, src + " is a file, not a directory"},
		{"download ignores upload flags", []string{"download", "--compose-threshold", "1MiB", "ds:d/a", t.TempDir()}, 0, "ignores it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := e.plxfs(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
	if n := len(e.names(t, "pre/d/")); n != 1 {
		t.Errorf("a refused rm deleted: %d left", n)
	}
}

// TestProgressReachesFullOnlyWithTheLastFile: bytes can all be sent while a file is still
// outstanding (a compose, a verification, a rename); the bar waits for it.
func TestProgressReachesFullOnlyWithTheLastFile(t *testing.T) {
	r := &reporter{verb: "upload", tty: true, err: os.Stderr}
	dev, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	r.err = dev
	defer r.finish(transfer.Summary{}, nil) // stops its redraws before dev closes
	r.Total(2, 100)
	r.Bytes(60)
	r.Done(transfer.Event{Name: "a", Size: 60})
	r.Bytes(40) // every byte sent, the second file not done yet
	if got := r.bar.State().CurrentNum; got != 99 {
		t.Errorf("bar at %d with a file outstanding, want 99", got)
	}
	r.Done(transfer.Event{Name: "b", Size: 40})
	if got := r.bar.State().CurrentNum; got != 100 {
		t.Errorf("bar at %d after the last file, want 100", got)
	}
	// Skipped files count as done bytes.
	s := &reporter{verb: "download", tty: true, err: dev}
	defer s.finish(transfer.Summary{}, nil)
	s.Total(1, 10)
	s.Done(transfer.Event{Name: "c", Size: 10, Skipped: true})
	if got := s.bar.State().CurrentNum; got != 10 {
		t.Errorf("skipped: bar at %d, want 10", got)
	}
}

// TestProgressRateAndComposeStep: no rate is shown before minRateTime (a first update of a
// whole part once showed "3.4 TiB/s"), then bytes sent over time, skipped files excluded; a
// composed upload's compose shows at once as its own step; the final line has no rate and the
// summary line follows.
func TestProgressRateAndComposeStep(t *testing.T) {
	out := &syncBuffer{}
	r := &reporter{verb: "upload", tty: true, err: out, width: 120}
	r.Total(2, 64<<20)
	r.Bytes(16 << 20) // a whole part, at once
	if strings.Contains(out.String(), "/s") {
		t.Fatalf("a rate on the first update: %q", out.String())
	}
	status := func(after time.Duration) string {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.statusLocked(r.start.Add(after))
	}
	for _, tc := range []struct {
		after time.Duration
		want  string
	}{
		{5 * time.Millisecond, "0/2 files, 16.0 MiB of 64.0 MiB"},
		{minRateTime - time.Millisecond, "0/2 files, 16.0 MiB of 64.0 MiB"},
		{2 * time.Second, "0/2 files, 16.0 MiB of 64.0 MiB, 8.0 MiB/s, 6s left"},
	} {
		if got := status(tc.after); got != tc.want {
			t.Errorf("after %v: %q, want %q", tc.after, got, tc.want)
		}
	}
	r.Done(transfer.Event{Name: "same", Size: 16 << 20, Skipped: true}) // moves the bar, not the rate
	if got, want := status(2*time.Second), "1/2 files, 32.0 MiB of 64.0 MiB, 8.0 MiB/s, 4s left"; got != want {
		t.Errorf("after a skip: %q, want %q", got, want)
	}

	r.Bytes(32 << 20) // every part of "big" sent
	r.Composing("big", 4)
	if want := "1/2 files, 64.0 MiB of 64.0 MiB, composing 4 parts"; !strings.Contains(out.String(), want) {
		t.Fatalf("compose step not drawn: %q, want %q", out.String(), want)
	}
	if got := r.bar.State().CurrentPercent; got >= 1 {
		t.Errorf("bar full (%v) while composing", got)
	}
	r.Done(transfer.Event{Name: "big", Size: 32 << 20})
	if got, want := status(3*time.Second), "2/2 files, 64.0 MiB of 64.0 MiB"; got != want {
		t.Errorf("after the compose: %q, want %q", got, want)
	}
	if err := r.finish(transfer.Summary{Files: 1, Bytes: 32 << 20, Skipped: 1, Elapsed: 2 * time.Second}, nil); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	last := text[strings.LastIndexByte(text, '\r')+1:]
	if !strings.Contains(last, "100%") || !strings.HasSuffix(last, " 2/2 files, 64.0 MiB of 64.0 MiB \nuploaded 1 files, 32.0 MiB in 2s (16.0 MiB/s), 1 skipped, 0 failed\n") {
		t.Errorf("final line and summary: %q", last)
	}
	time.Sleep(2 * refreshEvery) // nothing is drawn after finish
	if out.String() != text {
		t.Errorf("drawn after finish: %q", strings.TrimPrefix(out.String(), text))
	}
}

func TestRateOf(t *testing.T) {
	for _, tc := range []struct {
		sent    int64
		elapsed time.Duration
		want    float64
		ok      bool
	}{
		{16 << 20, 5 * time.Microsecond, 0, false}, // the "3.4 TiB/s" first tick
		{16 << 20, minRateTime - 1, 0, false},
		{0, time.Minute, 0, false},
		{20 << 20, 2 * time.Second, 10 << 20, true},
	} {
		if got, ok := rateOf(tc.sent, tc.elapsed); got != tc.want || ok != tc.ok {
			t.Errorf("rateOf(%d, %v) = %v, %v; want %v, %v", tc.sent, tc.elapsed, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRmDirectoryWithoutRIsUsage(t *testing.T) {
	e := newStorageEnv(t)
	e.put(t, "pre/dir/a", "a")
	if code, _, errOut := e.plxfs(t, "rm", "ds:dir"); code != 2 || !strings.Contains(errOut, "use rm -r") {
		t.Errorf("rm of a directory: %d %q", code, errOut)
	}
	if code, _, errOut := e.plxfs(t, "download", "ds:dir", t.TempDir()); code != 2 || !strings.Contains(errOut, "use download -r") {
		t.Errorf("download of a directory: %d %q", code, errOut)
	}
}

// A failure line names what failed once: "plxfs: ds:run1/missing.txt: no such object", not
// the name again in the cause.
func TestInitFailureNamesOnce(t *testing.T) {
	e := newStorageEnv(t)
	e.put(t, "pre/run1/a.txt", "a")
	for _, tc := range []struct{ flag, what, want string }{
		{"--files", "run1/missing.txt", "plxfs: ds:run1/missing.txt: no such object\n"},
		{"--dirs", "run1/none", "plxfs: ds:run1/none: no objects below this directory\n"},
	} {
		code, _, errOut := e.plxfs(t, "init", "--connection", "ds", tc.flag, tc.what, "--path", t.TempDir())
		if code != 1 || !strings.Contains(errOut, tc.want) || strings.Count(errOut, tc.what) != 1 {
			t.Errorf("init %s %s: exit %d, stderr %q; want 1 and %q, naming it once", tc.flag, tc.what, code, errOut, tc.want)
		}
	}
}

// demo's hints name a command that works from any directory: plxfs when $PATH finds this
// very executable, else its absolute path.
func TestSelfCommand(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", t.TempDir())
	if got := selfCommand(); got != exe || !filepath.IsAbs(got) {
		t.Errorf("not on $PATH: %q, want %q", got, exe)
	}
	dir := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(dir, "plxfs")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir)
	if got := selfCommand(); got != "plxfs" {
		t.Errorf("on $PATH: %q, want plxfs", got)
	}
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "plxfs"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", other)
	if got := selfCommand(); got != exe {
		t.Errorf("another plxfs on $PATH: %q, want %q", got, exe)
	}
}
