package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plxfs/plxfs/metrics"
)

// Every request is counted under its operation name, and a non-OK status under its errno.
func TestFUSEOperationNames(t *testing.T) {
	m := metrics.New()
	w := metrics.FUSE(fuse.NewDefaultRawFileSystem(), m)
	c := make(chan struct{})
	h := &fuse.InHeader{}
	for _, tc := range []struct {
		op   string
		call func() fuse.Status
	}{
		{"lookup", func() fuse.Status { return w.Lookup(c, h, "x", &fuse.EntryOut{}) }},
		{"forget", func() fuse.Status { w.Forget(1, 1); return fuse.OK }},
		{"getattr", func() fuse.Status { return w.GetAttr(c, &fuse.GetAttrIn{}, &fuse.AttrOut{}) }},
		{"setattr", func() fuse.Status { return w.SetAttr(c, &fuse.SetAttrIn{}, &fuse.AttrOut{}) }},
		{"mknod", func() fuse.Status { return w.Mknod(c, &fuse.MknodIn{}, "x", &fuse.EntryOut{}) }},
		{"mkdir", func() fuse.Status { return w.Mkdir(c, &fuse.MkdirIn{}, "x", &fuse.EntryOut{}) }},
		{"unlink", func() fuse.Status { return w.Unlink(c, h, "x") }},
		{"rmdir", func() fuse.Status { return w.Rmdir(c, h, "x") }},
		{"rename", func() fuse.Status { return w.Rename(c, &fuse.RenameIn{}, "x", "y") }},
		{"link", func() fuse.Status { return w.Link(c, &fuse.LinkIn{}, "x", &fuse.EntryOut{}) }},
		{"symlink", func() fuse.Status { return w.Symlink(c, h, "x", "y", &fuse.EntryOut{}) }},
		{"readlink", func() fuse.Status { _, st := w.Readlink(c, h); return st }},
		{"access", func() fuse.Status { return w.Access(c, &fuse.AccessIn{}) }},
		{"getxattr", func() fuse.Status { _, st := w.GetXAttr(c, h, "x", nil); return st }},
		{"listxattr", func() fuse.Status { _, st := w.ListXAttr(c, h, nil); return st }},
		{"setxattr", func() fuse.Status { return w.SetXAttr(c, &fuse.SetXAttrIn{}, "x", nil) }},
		{"removexattr", func() fuse.Status { return w.RemoveXAttr(c, h, "x") }},
		{"create", func() fuse.Status { return w.Create(c, &fuse.CreateIn{}, "x", &fuse.CreateOut{}) }},
		{"tmpfile", func() fuse.Status { return w.Tmpfile(c, &fuse.CreateIn{}, &fuse.CreateOut{}) }},
		{"open", func() fuse.Status { return w.Open(c, &fuse.OpenIn{}, &fuse.OpenOut{}) }},
		{"read", func() fuse.Status { _, st := w.Read(c, &fuse.ReadIn{}, nil); return st }},
		{"lseek", func() fuse.Status { return w.Lseek(c, &fuse.LseekIn{}, &fuse.LseekOut{}) }},
		{"getlk", func() fuse.Status { return w.GetLk(c, &fuse.LkIn{}, &fuse.LkOut{}) }},
		{"setlk", func() fuse.Status { return w.SetLk(c, &fuse.LkIn{}) }},
		{"setlkw", func() fuse.Status { return w.SetLkw(c, &fuse.LkIn{}) }},
		{"write", func() fuse.Status { _, st := w.Write(c, &fuse.WriteIn{}, nil); return st }},
		{"copy_file_range", func() fuse.Status { _, st := w.CopyFileRange(c, &fuse.CopyFileRangeIn{}); return st }},
		{"ioctl", func() fuse.Status { return w.Ioctl(c, &fuse.IoctlIn{}, nil, &fuse.IoctlOut{}, nil) }},
		{"flush", func() fuse.Status { return w.Flush(c, &fuse.FlushIn{}) }},
		{"fsync", func() fuse.Status { return w.Fsync(c, &fuse.FsyncIn{}) }},
		{"fallocate", func() fuse.Status { return w.Fallocate(c, &fuse.FallocateIn{}) }},
		{"opendir", func() fuse.Status { return w.OpenDir(c, &fuse.OpenIn{}, &fuse.OpenOut{}) }},
		{"readdir", func() fuse.Status { return w.ReadDir(c, &fuse.ReadIn{}, nil) }},
		{"readdirplus", func() fuse.Status { return w.ReadDirPlus(c, &fuse.ReadIn{}, nil) }},
		{"releasedir", func() fuse.Status { w.ReleaseDir(&fuse.ReleaseIn{}); return fuse.OK }},
		{"fsyncdir", func() fuse.Status { return w.FsyncDir(c, &fuse.FsyncIn{}) }},
		{"statfs", func() fuse.Status { return w.StatFs(c, h, &fuse.StatfsOut{}) }},
		{"statx", func() fuse.Status { return w.Statx(c, &fuse.StatxIn{}, &fuse.StatxOut{}) }},
	} {
		t.Run(tc.op, func(t *testing.T) {
			st := tc.call()
			if got := value(t, m, "plxfs_fuse_operations_total", "op", tc.op); got != 1 {
				t.Errorf("operations{op=%s} = %v, want 1", tc.op, got)
			}
			if got := value(t, m, "plxfs_fuse_operation_duration_seconds", "op", tc.op); got != 1 {
				t.Errorf("duration samples{op=%s} = %v, want 1", tc.op, got)
			}
			errs := value(t, m, "plxfs_fuse_errors_total", "op", tc.op)
			switch {
			case st == fuse.OK && errs != 0:
				t.Errorf("status OK but errors{op=%s} = %v", tc.op, errs)
			case st != fuse.OK:
				name := map[fuse.Status]string{fuse.ENOSYS: "ENOSYS", fuse.ENOENT: "ENOENT", fuse.EINVAL: "EINVAL", fuse.ENOATTR: "ENODATA", fuse.ENOTSUP: "EOPNOTSUPP"}[st]
				if name == "" {
					t.Fatalf("test table lacks the name of status %v", st)
				}
				if got := value(t, m, "plxfs_fuse_errors_total", "op", tc.op, "errno", name); got != 1 {
					t.Errorf("errors{op=%s,errno=%s} = %v, want 1 (status %v)", tc.op, name, got, st)
				}
			}
		})
	}
	// Writev answering ENOSYS is not recorded: the server falls back to Write, recorded then.
	before := value(t, m, "plxfs_fuse_operations_total", "op", "write")
	if _, st := w.Writev(c, &fuse.WriteIn{}, [][]byte{{1}}); st != fuse.ENOSYS {
		t.Fatalf("default Writev = %v, want ENOSYS", st)
	}
	if got := value(t, m, "plxfs_fuse_operations_total", "op", "write"); got != before {
		t.Errorf("Writev ENOSYS was recorded (write ops %v → %v)", before, got)
	}
}

// negativeFS answers every lookup with a negative entry, as go-fuse does for ENOENT when
// the mount caches negative lookups.
type negativeFS struct{ fuse.RawFileSystem }

func (negativeFS) Lookup(_ <-chan struct{}, _ *fuse.InHeader, _ string, out *fuse.EntryOut) fuse.Status {
	out.NodeId = 0
	return fuse.OK
}

func TestFUSENegativeLookupIsENOENT(t *testing.T) {
	m := metrics.New()
	w := metrics.FUSE(negativeFS{fuse.NewDefaultRawFileSystem()}, m)
	if st := w.Lookup(nil, &fuse.InHeader{}, "x", &fuse.EntryOut{}); st != fuse.OK {
		t.Fatalf("status %v changed on the way through", st)
	}
	if got := value(t, m, "plxfs_fuse_errors_total", "op", "lookup", "errno", "ENOENT"); got != 1 {
		t.Errorf("errors{lookup,ENOENT} = %v after a negative entry, want 1", got)
	}
}

// memRoot is a directory holding one in-memory file, "hello".
type memRoot struct {
	fusefs.Inode
	data []byte
}

func (r *memRoot) OnAdd(ctx context.Context) {
	f := &fusefs.MemRegularFile{Data: r.data, Attr: fuse.Attr{Mode: 0o644}}
	r.AddChild("hello", r.NewPersistentInode(ctx, f, fusefs.StableAttr{}), false)
}

// mountMem mounts a memRoot through metrics.FUSE, as the daemon mounts plxfs.
func mountMem(t *testing.T, m *metrics.Metrics, data []byte) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("these tests need /dev/fuse: %v", err)
	}
	mnt := t.TempDir()
	opts := &fusefs.Options{MountOptions: fuse.MountOptions{FsName: "metricstest", DirectMount: os.Geteuid() == 0}}
	raw := metrics.FUSE(fusefs.NewNodeFS(&memRoot{data: data}, opts), m)
	srv, err := fuse.NewServer(raw, mnt, &opts.MountOptions)
	if err != nil {
		t.Fatalf("mount: %v", err)
	}
	go srv.Serve()
	if err := srv.WaitMount(); err != nil {
		t.Fatalf("mount: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return mnt
}

// waitFor polls cond until it holds, failing after a generous deadline (the kernel sends
// RELEASE asynchronously after close).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestFUSEOnRealMount(t *testing.T) {
	m := metrics.New()
	data := bytes.Repeat([]byte("plxfs!"), 5000) // 30,000 bytes
	mnt := mountMem(t, m, data)
	hello := filepath.Join(mnt, "hello")

	if _, err := os.Stat(filepath.Join(mnt, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat missing: %v", err)
	}
	if got := value(t, m, "plxfs_fuse_errors_total", "op", "lookup", "errno", "ENOENT"); got < 1 {
		t.Errorf("errors{lookup,ENOENT} = %v after a failed stat", got)
	}

	f, err := os.Open(hello)
	if err != nil {
		t.Fatal(err)
	}
	if got := value(t, m, "plxfs_open_handles"); got != 1 {
		t.Errorf("open handles %v with one file open, want 1", got)
	}
	got := make([]byte, len(data)+10)
	n, _ := f.ReadAt(got, 0)
	if !bytes.Equal(got[:n], data) {
		t.Fatalf("read %d bytes, not the file", n)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m, "plxfs_fuse_read_bytes_total"); got != float64(len(data)) {
		t.Errorf("read bytes %v, want the file size %d", got, len(data))
	}
	waitFor(t, "open handles back to 0", func() bool { return value(t, m, "plxfs_open_handles") == 0 })
	if got := value(t, m, "plxfs_fuse_operations_total", "op", "release"); got < 1 {
		t.Errorf("release ops %v after close", got)
	}

	w, err := os.OpenFile(hello, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteAt([]byte("abcde"), 0); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m, "plxfs_fuse_write_bytes_total"); got != 5 {
		t.Errorf("write bytes %v, want 5", got)
	}
	for _, op := range []string{"lookup", "getattr", "open", "read", "write", "flush", "release"} {
		ops := value(t, m, "plxfs_fuse_operations_total", "op", op)
		if ops < 1 {
			t.Errorf("no %s operation recorded", op)
		}
		if d := value(t, m, "plxfs_fuse_operation_duration_seconds", "op", op); d != ops {
			t.Errorf("%s: %v duration samples for %v operations", op, d, ops)
		}
	}
	waitFor(t, "open handles back to 0", func() bool { return value(t, m, "plxfs_open_handles") == 0 })

	// With real series of every kind present, the names and help still pass promlint.
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "plxfs_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}
