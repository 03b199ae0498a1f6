package control_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/control"
)

func TestSocketDirs(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  control.Env
		want []string
	}{
		{"user with runtime dir", control.Env{RuntimeDir: "/run/user/1000", TempDir: "/tmp", UID: 1000},
			[]string{"/run/user/1000/plxfs", "/tmp/plxfs-1000"}},
		{"root with runtime dir", control.Env{RuntimeDir: "/run/user/0", TempDir: "/tmp", UID: 0},
			[]string{"/run/user/0/plxfs", "/run/plxfs", "/tmp/plxfs-0"}},
		{"root without", control.Env{TempDir: "/var/tmp", UID: 0}, []string{"/run/plxfs", "/var/tmp/plxfs-0"}},
		{"relative values are ignored", control.Env{RuntimeDir: "rel", TempDir: "also-rel", UID: 7}, []string{"/tmp/plxfs-7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := control.SocketDirs(tc.env); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("SocketDirs = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSocketName(t *testing.T) {
	a := control.SocketName("/mnt/plx")
	if a != control.SocketName("/mnt/plx/") || a != control.SocketName("/mnt//plx") {
		t.Error("one mountpoint spelled differently gets different sockets")
	}
	if a == control.SocketName("/mnt/plx2") {
		t.Error("two mountpoints share a socket name")
	}
	if len(a) != 16+len(".sock") || !strings.HasSuffix(a, ".sock") {
		t.Errorf("SocketName = %q, want 16 hex digits + .sock", a)
	}
	env := control.Env{RuntimeDir: "/r", TempDir: "/t", UID: 3}
	got := control.SocketCandidates(env, "/mnt/plx")
	want := []string{"/r/plxfs/" + a, "/t/plxfs-3/" + a}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SocketCandidates = %q, want %q", got, want)
	}
}

// shortTemp returns a short private directory (t.TempDir paths can exceed the 107 bytes of a
// unix socket path).
func shortTemp(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pxc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func TestDefaultSocketMakesAPrivateDirectory(t *testing.T) {
	base := shortTemp(t)
	env := control.Env{RuntimeDir: base, TempDir: base, UID: os.Geteuid()}
	p, err := control.DefaultSocket(env, "/mnt/x")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(base, "plxfs", control.SocketName("/mnt/x")); p != want {
		t.Errorf("DefaultSocket = %s, want %s", p, want)
	}
	fi, err := os.Stat(filepath.Dir(p))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %v, want 0700", fi.Mode().Perm())
	}

	// A directory others can write to is skipped for the next candidate.
	bad := shortTemp(t)
	if err := os.MkdirAll(filepath.Join(bad, "plxfs"), 0o777); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(bad, "plxfs"), 0o777)
	p, err = control.DefaultSocket(control.Env{RuntimeDir: bad, TempDir: base, UID: os.Geteuid()}, "/mnt/x")
	if err != nil {
		t.Fatal(err)
	}
	if strings.HasPrefix(p, bad) {
		t.Errorf("DefaultSocket chose %s inside a world-writable directory", p)
	}
	// Owned by someone else (we create it, but claim another uid): refused.
	if _, err := control.DefaultSocket(control.Env{TempDir: bad, UID: os.Geteuid() + 4242}, "/mnt/x"); err == nil || !strings.Contains(err.Error(), "belongs to uid") {
		t.Errorf("a directory owned by another uid: %v", err)
	}
}

func TestListen(t *testing.T) {
	dir := shortTemp(t)
	path := filepath.Join(dir, "s.sock")

	// A socket file left by a dead daemon is replaced.
	dead, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	dead.(*net.UnixListener).SetUnlinkOnClose(false)
	dead.Close()
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}

	// A live one is refused.
	if _, err := control.Listen(path); err == nil || !strings.Contains(err.Error(), "in use by another running plxfs") {
		t.Errorf("Listen over a live socket: %v", err)
	}
	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := control.Listen(file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen over a regular file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Error("Listen clobbered a regular file")
	}
	// Too long for sun_path: a clear error.
	long := filepath.Join(dir, strings.Repeat("x", 120)+".sock")
	if _, err := control.Listen(long); err == nil || !strings.Contains(err.Error(), "--status-socket") {
		t.Errorf("Listen on a %d-byte path: %v", len(long), err)
	}
}

func TestStatusRoundTrip(t *testing.T) {
	path := filepath.Join(shortTemp(t), "s.sock")
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	calls := 0
	want := control.Status{
		Version: "v1.2.3", PID: 42, Mountpoint: "/mnt/plx", Started: start,
		Connections: []control.Connection{{Name: "ds1", Bucket: "b", Prefix: "p/", Credentials: "secret gcs mounted at /etc/gcs"}},
		Cache:       control.Cache{Dir: "/c", Bytes: 4096, MaxBytes: 1 << 30, Chunks: 1, Hits: 3, Misses: 1, HitRatio: 0.75, GCSReadBytes: 10, ServedBytes: 20},
		Uploads:     control.Uploads{InFlight: 1, Done: 2, Bytes: 300, Failures: 1, Pending: 4},
		OpenHandles: 5,
		RecentErrors: []control.LogRecord{{Time: start, Level: "ERROR", Message: "upload failed",
			Attrs: []control.Attr{{Key: "connection", Value: "ds1"}, {Key: "path", Value: "a b"}}}},
		ErrorsLogged: 9,
	}
	srv := control.Serve(ln, func() control.Status {
		calls++
		s := want
		s.PID = calls // live: computed per request
		return s
	})
	ctx := context.Background()
	got, err := control.Get(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	want.PID = 1
	if !reflect.DeepEqual(got, want) {
		t.Errorf("status over the socket:\n got %+v\nwant %+v", got, want)
	}
	got, used, err := control.GetAny(ctx, []string{filepath.Join(filepath.Dir(path), "none.sock"), path})
	if err != nil || used != path || got.PID != 2 {
		t.Errorf("GetAny = pid %d from %s, %v; want pid 2 from %s", got.PID, used, err, path)
	}

	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket file still there after Close: %v", err)
	}
	_, _, err = control.GetAny(ctx, []string{path})
	if !errors.Is(err, control.ErrNoDaemon) || !strings.Contains(err.Error(), path) {
		t.Errorf("GetAny after Close: %v, want ErrNoDaemon naming %s", err, path)
	}
}

// A socket file whose daemon is gone (killed: the file stays) reads as "no daemon".
func TestGetStaleSocketIsNoDaemon(t *testing.T) {
	path := filepath.Join(shortTemp(t), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := control.Get(context.Background(), path); !errors.Is(err, control.ErrNoDaemon) {
		t.Errorf("Get on a stale socket: %v, want ErrNoDaemon", err)
	}
}

// A client finds the daemons by their socket directory and tells them of changes; a daemon
// that takes none refuses, and a socket left by a killed daemon is no daemon.
func TestTellChanged(t *testing.T) {
	env := control.Env{RuntimeDir: shortTemp(t), TempDir: shortTemp(t), UID: os.Geteuid()}
	path, err := control.DefaultSocket(env, "/mnt/plx")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := control.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan []control.Change, 1)
	srv := control.ServeHandlers(ln, control.Handlers{Status: func() control.Status { return control.Status{} },
		Changed: func(c []control.Change) { got <- c }})
	defer srv.Close()
	stale := filepath.Join(filepath.Dir(path), "stale.sock")
	sl, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	sl.(*net.UnixListener).SetUnlinkOnClose(false)
	sl.Close()
	os.WriteFile(filepath.Join(filepath.Dir(path), "notes.sock.txt"), nil, 0o600)

	var socks []string // in this test's directory (as root, /run/plxfs is searched too)
	for _, s := range control.Sockets(env) {
		if filepath.Dir(s) == filepath.Dir(path) {
			socks = append(socks, s)
		}
	}
	slices.Sort(socks)
	want := []string{path, stale}
	slices.Sort(want)
	if !slices.Equal(socks, want) {
		t.Fatalf("Sockets = %v, want %v", socks, want)
	}
	changes := []control.Change{{Bucket: "b", Name: "p/a.txt"}, {Bucket: "b", Name: "p/dir", Tree: true}}
	ctx := context.Background()
	if err := control.TellChanged(ctx, path, changes); err != nil {
		t.Fatal(err)
	}
	if c := <-got; !reflect.DeepEqual(c, changes) {
		t.Errorf("the daemon was told %+v, want %+v", c, changes)
	}
	if err := control.TellChanged(ctx, stale, changes); !errors.Is(err, control.ErrNoDaemon) {
		t.Errorf("telling a stale socket: %v, want ErrNoDaemon", err)
	}

	other := filepath.Join(shortTemp(t), "s.sock")
	ln2, err := control.Listen(other)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := control.Serve(ln2, func() control.Status { return control.Status{} })
	defer srv2.Close()
	if err := control.TellChanged(ctx, other, changes); err == nil || errors.Is(err, control.ErrNoDaemon) {
		t.Errorf("telling a daemon that takes no changes: %v, want a refusal", err)
	}
}
