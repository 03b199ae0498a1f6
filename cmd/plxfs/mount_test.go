package main

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/urfave/cli/v2"
)

// parseMountArgs runs the mount command's flag parsing on args (no mount).
func parseMountArgs(t *testing.T, args ...string) (mountConfig, error) {
	t.Helper()
	cmd := mountCommand()
	var mc mountConfig
	var perr error
	cmd.Action = func(c *cli.Context) error {
		mc, perr = parseMountFlags(c)
		return nil
	}
	app := &cli.App{Name: "plxfs", Commands: []*cli.Command{cmd}, ExitErrHandler: func(*cli.Context, error) {}}
	if err := app.Run(append([]string{"plxfs", "mount"}, args...)); err != nil {
		return mc, err
	}
	return mc, perr
}

func TestParseMountFlags(t *testing.T) {
	mc, err := parseMountArgs(t, "--cache-dir", "/var/cache/x", "--cache-size", "2GiB", "--chunk-size", "4MiB",
		"--ttl", "5s", "--uid", "1000", "--gid", "100", "--file-mode", "0600", "--dir-mode", "700",
		"--read-only", "--allow-other", "--readahead", "0", "--no-posix-metadata", "/mnt/plx")
	if err != nil {
		t.Fatal(err)
	}
	if mc.mountpoint != "/mnt/plx" || mc.cache.Dir != "/var/cache/x/chunks" || mc.fs.StagingDir != "/var/cache/x/staging" {
		t.Errorf("paths: %+v", mc)
	}
	if mc.cache.MaxBytes != 2<<30 || mc.cache.ChunkSize != 4<<20 || mc.cache.Readahead != -1 {
		t.Errorf("cache options: %+v", mc.cache)
	}
	if mc.fs.TTL != 5*time.Second || mc.fs.UID != 1000 || mc.fs.GID != 100 || mc.fs.FileMode != 0o600 || mc.fs.DirMode != 0o700 || !mc.fs.ReadOnly || !mc.fs.NoPOSIXMetadata {
		t.Errorf("fs options: %+v", mc.fs)
	}
	if !mc.mount.AllowOther {
		t.Errorf("allow-other not set")
	}
	if !strings.HasPrefix(mc.fs.Upload.Owner, "plxfs-mount-") || mc.fs.Upload.Owner != mountOwner("/mnt/plx") {
		t.Errorf("owner %q", mc.fs.Upload.Owner)
	}

	mc, err = parseMountArgs(t, "--cache-dir", "/c", "--ttl", "0", "/m")
	if err != nil {
		t.Fatal(err)
	}
	if mc.fs.TTL >= 0 || mc.cache.Readahead <= 0 || mc.fs.FileMode != 0o644 || mc.fs.DirMode != 0o755 || mc.fs.NoPOSIXMetadata {
		t.Errorf("defaults / --ttl 0: %+v %+v", mc.fs, mc.cache)
	}
}

func TestParseMountFlagErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string // in the error message
	}{
		{"no mountpoint", nil, "one MOUNTPOINT"},
		{"two mountpoints", []string{"/a", "/b"}, "one MOUNTPOINT"},
		{"bad cache size", []string{"--cache-size", "lots", "/m"}, "--cache-size"},
		{"bad chunk size", []string{"--chunk-size", "-1", "/m"}, "--chunk-size"},
		{"chunk bigger than cache", []string{"--cache-size", "16MiB", "--chunk-size", "8MiB", "/m"}, "quarter"},
		{"bad mode", []string{"--file-mode", "0999", "/m"}, "--file-mode"},
		{"zero mode", []string{"--dir-mode", "0", "/m"}, "--dir-mode"},
		{"bad uid", []string{"--uid", "root", "/m"}, "--uid"},
		{"negative ttl", []string{"--ttl", "-1s", "/m"}, "--ttl"},
		{"cache inside mount", []string{"--cache-dir", "/m/cache", "/m"}, "inside the mountpoint"},
		{"upload chunk not aligned", []string{"--upload-chunk-size", "1000", "/m"}, "256KiB"},
		{"bad workers", []string{"--upload-workers", "0", "/m"}, "--upload-workers"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMountArgs(t, append([]string{"--cache-dir", "/c"}, tc.args...)...)
			if tc.name == "cache inside mount" {
				_, err = parseMountArgs(t, tc.args...)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one mentioning %q", err, tc.want)
			}
			if !isUsageError(err) {
				t.Errorf("%v is not a usage error (exit code 2)", err)
			}
		})
	}
}

func TestMountOwnerStable(t *testing.T) {
	if mountOwner("/mnt/a") != mountOwner("/mnt/a") || mountOwner("/mnt/a") == mountOwner("/mnt/b") {
		t.Fatal("the owner id must be stable per mountpoint and differ between mountpoints")
	}
}

// countingWriter counts the writes that reach it and fails them all with err.
type countingWriter struct {
	n   int
	err error
}

func (w *countingWriter) Write(p []byte) (int, error) { w.n++; return 0, w.err }

// A log whose reader is gone costs one failed write, not one per line, and never reports an
// error to the logger; other errors are passed on.
func TestDropOnClosedPipe(t *testing.T) {
	under := &countingWriter{err: &os.PathError{Op: "write", Path: "/dev/stderr", Err: syscall.EPIPE}}
	w := dropOnClosedPipe(under)
	for i := 0; i < 100; i++ {
		if n, err := w.Write([]byte("line\n")); n != 5 || err != nil {
			t.Fatalf("write %d to a closed pipe: %d, %v; want 5, nil", i, n, err)
		}
	}
	if under.n != 1 {
		t.Errorf("%d writes reached the closed pipe, want 1", under.n)
	}
	other := &countingWriter{err: syscall.EIO}
	w = dropOnClosedPipe(other)
	for i := 0; i < 2; i++ {
		if _, err := w.Write([]byte("x")); !errors.Is(err, syscall.EIO) {
			t.Errorf("write %d: %v, want EIO passed on", i, err)
		}
	}
}
