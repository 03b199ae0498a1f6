package vfs

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
	"github.com/plxfs/plxfs/transfer"
)

// The core's filesystem on an in-memory bucket: files, directories, their states and the
// drain, without FUSE or the emulator.

type coreEnv struct {
	fs   *FS
	c    *Conn
	root *Dir
	b    *memstore.Bucket
}

func newCore(t *testing.T, cfg Config) *coreEnv {
	t.Helper()
	ch, err := cache.Open(cache.Options{Dir: t.TempDir(), ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	cfg.Cache = ch
	if !cfg.ReadOnly {
		cfg.StagingDir = t.TempDir()
	}
	if cfg.TTL == 0 {
		cfg.TTL = time.Minute
	}
	if cfg.Upload.Owner == "" {
		cfg.Upload = transfer.Options{Owner: "test", ComposeThreshold: -1}
	}
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := memstore.New("core")
	c := f.Connect("c", b, "p/")
	return &coreEnv{fs: f, c: c, root: c.Root(), b: b}
}

var ctx = context.Background()

// lookupFile looks name up in d and returns its file.
func (e *coreEnv) lookupFile(t *testing.T, d *Dir, name string) *File {
	t.Helper()
	info, at, err := d.Lookup(ctx, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	f, ok := d.Child(name, info, at).(*File)
	if !ok {
		t.Fatalf("%s is a %v, not a file", name, info.Kind)
	}
	return f
}

func (e *coreEnv) content(t *testing.T, name string) string {
	t.Helper()
	data, ok := e.b.Content(name)
	if !ok {
		t.Fatalf("%s does not exist; the bucket holds %v", name, e.b.Names(""))
	}
	return string(data)
}

func write(t *testing.T, h *OpenFile, off int64, s string) {
	t.Helper()
	if k, err := h.Write(ctx, []byte(s), off); err != nil || k != len(s) {
		t.Fatalf("write %q at %d: %d, %v", s, off, k, err)
	}
}

func readAll(t *testing.T, h *OpenFile, n int) string {
	t.Helper()
	buf := make([]byte, n)
	sp, k, err := h.Read(ctx, buf, 0, false)
	if err != nil && err != io.EOF {
		t.Fatalf("read: %v", err)
	}
	if sp != nil {
		t.Fatal("a span without spanOK")
	}
	return string(buf[:k])
}

// TestCoreCreateWriteClose: a new file exists locally (lookups and listings show it) until
// its close uploads it, under the precondition that no object of that name exists.
func TestCoreCreateWriteClose(t *testing.T) {
	e := newCore(t, Config{})
	h, err := e.root.Create(ctx, Caller{}, "a", 0o600)
	if err != nil {
		t.Fatal(err)
	}
	write(t, h, 0, "hello")
	if info, _, err := e.root.Lookup(ctx, "a"); err != nil || info.Size != 5 {
		t.Fatalf("lookup of the new file: %+v, %v", info, err)
	}
	entries, _, err := e.root.List(ctx)
	if err != nil || len(entries) != 1 || entries[0].Name != "a" || entries[0].Info.Size != 5 {
		t.Fatalf("listing: %+v, %v", entries, err)
	}
	if got := e.b.Names(""); len(got) != 0 {
		t.Fatalf("uploaded before close: %v", got)
	}
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h.Release()
	if got := e.content(t, "p/a"); got != "hello" {
		t.Fatalf("object holds %q", got)
	}
	if e.fs.Pending() != 0 {
		t.Fatal("pending after a successful close")
	}
	r, _, err := e.lookupFile(t, e.root, "a").Open(ctx, false, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release()
	if got := readAll(t, r, 16); got != "hello" {
		t.Fatalf("read back %q", got)
	}
}

// TestCoreOverwriteWithPrecondition: an overwrite uploads under the precondition of the
// generation it replaces. When another writer replaced the object meanwhile, close fails with
// ESTALE's error, the bucket keeps the other writer's bytes, and the changes stay staged.
func TestCoreOverwriteWithPrecondition(t *testing.T) {
	e := newCore(t, Config{})
	if _, err := e.b.Put("p/f", []byte("one"), nil); err != nil {
		t.Fatal(err)
	}
	f := e.lookupFile(t, e.root, "f")
	h, _, err := f.Open(ctx, true, true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	write(t, h, 0, "mine")
	if _, err := e.b.Put("p/f", []byte("theirs"), nil); err != nil { // behind the mount
		t.Fatal(err)
	}
	if err := h.Flush(ctx); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("close after the object was replaced: %v, want a failed precondition", err)
	}
	if got := e.content(t, "p/f"); got != "theirs" {
		t.Fatalf("the other writer's object was clobbered: %q", got)
	}
	if !f.Dirty() || e.fs.Pending() != 1 {
		t.Fatal("the failed upload's data is no longer staged")
	}

	// Without interference the overwrite lands, and replaces exactly the generation it read.
	g := e.lookupFile(t, e.root, "f")
	if g != f {
		t.Fatal("a lookup made a second file for the path")
	}
	e.b.SetFault(nil)
	e.fs.meta.Forget(MetaKey("c", "f"))
	f2, err := e.b.Put("p/g", []byte("base"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gf := e.lookupFile(t, e.root, "g")
	if gf.Generation() != f2.Generation {
		t.Fatalf("file knows generation %d, object is %d", gf.Generation(), f2.Generation)
	}
	w, _, err := gf.Open(ctx, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, 4, "+more")
	if err := w.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	w.Release()
	if got := e.content(t, "p/g"); got != "base+more" {
		t.Fatalf("overwrite holds %q", got)
	}
}

// TestCoreRenameFile: a rename moves the object (copy with precondition, delete of the source
// generation) and the file: an open handle follows it, a lookup of the old name fails, the
// replaced target is detached.
func TestCoreRenameFile(t *testing.T) {
	e := newCore(t, Config{})
	h, err := e.root.Create(ctx, Caller{}, "a", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	write(t, h, 0, "content")
	if _, err := e.b.Put("p/b", []byte("old target"), nil); err != nil {
		t.Fatal(err)
	}
	target := e.lookupFile(t, e.root, "b")
	if err := e.root.Rename(ctx, "a", e.root, "b", false); err != nil {
		t.Fatal(err)
	}
	if got := e.b.Names(""); !slices.Equal(got, []string{"p/b"}) {
		t.Fatalf("bucket after rename: %v", got)
	}
	if got := e.content(t, "p/b"); got != "content" {
		t.Fatalf("target holds %q", got)
	}
	if _, _, err := e.root.Lookup(ctx, "a"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("lookup of the old name: %v", err)
	}
	if h.File().Path() != "b" || h.File().Generation() == 0 {
		t.Fatalf("the renamed file is at %q, generation %d", h.File().Path(), h.File().Generation())
	}
	if got := readAll(t, h, 16); got != "content" {
		t.Fatalf("the open handle reads %q after the rename", got)
	}
	if _, unlinked, _ := target.Attr(ctx, nil); !unlinked {
		t.Fatal("the replaced target is not detached")
	}
	if err := e.root.Rename(ctx, "b", e.root, "b2", true); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Put("p/c", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.root.Rename(ctx, "b2", e.root, "c", true); !errors.Is(err, ErrExists) {
		t.Fatalf("RENAME_NOREPLACE onto an existing name: %v", err)
	}
}

// TestCoreRenameDirectory: a directory rename uploads the changes below it first, then moves
// every object and every registered node below it.
func TestCoreRenameDirectory(t *testing.T) {
	e := newCore(t, Config{})
	if _, err := e.root.Mkdir(ctx, Caller{}, "d", 0o755); err != nil {
		t.Fatal(err)
	}
	info, at, err := e.root.Lookup(ctx, "d")
	if err != nil {
		t.Fatal(err)
	}
	d := e.root.Child("d", info, at).(*Dir)
	h, err := d.Create(ctx, Caller{}, "x", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	write(t, h, 0, "below")
	if err := e.root.Rmdir(ctx, "d"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir of a directory with a file being written: %v", err)
	}
	if err := e.root.Rename(ctx, "d", e.root, "e", false); err != nil {
		t.Fatal(err)
	}
	if got := e.b.Names(""); !slices.Equal(got, []string{"p/e/", "p/e/x"}) {
		t.Fatalf("bucket after the directory rename: %v", got)
	}
	if d.Path() != "e" || h.File().Path() != "e/x" {
		t.Fatalf("registered nodes at %q and %q", d.Path(), h.File().Path())
	}
	write(t, h, 5, "!")
	if err := h.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "p/e/x"); got != "below!" {
		t.Fatalf("e/x holds %q", got)
	}
	if err := e.root.Rename(ctx, "e", d, "inner", false); !errors.Is(err, ErrIntoItself) {
		t.Fatalf("rename into itself: %v", err)
	}
}

// TestCoreDrain: after StopWrites, new changes are refused with ErrDraining while files being
// written keep their handles, and SyncAll uploads every file with changes, orphans included.
func TestCoreDrain(t *testing.T) {
	e := newCore(t, Config{})
	if _, err := e.b.Put("p/old", []byte("x"), nil); err != nil {
		t.Fatal(err)
	}
	old := e.lookupFile(t, e.root, "old")
	h, err := e.root.Create(ctx, Caller{}, "open", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, h, 0, "kept open")
	o, err := e.root.Create(ctx, Caller{}, "orphan", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	write(t, o, 0, "forgotten")
	o.Release()       // closed without a flush (a killed writer's release)
	o.File().Forget() // and the kernel forgot it: an orphan
	if info, _, err := e.root.Lookup(ctx, "orphan"); err != nil || info.Size != 9 {
		t.Fatalf("lookup of the orphan: %+v, %v", info, err)
	}

	e.fs.StopWrites()
	if _, err := e.root.Create(ctx, Caller{}, "new", 0o644); !errors.Is(err, ErrDraining) {
		t.Fatalf("create while draining: %v", err)
	}
	if _, _, err := old.Open(ctx, true, false, false); !errors.Is(err, ErrDraining) {
		t.Fatalf("open for writing while draining: %v", err)
	}
	mode := uint32(0o600)
	if _, err := old.Setattr(ctx, 0, false, AttrChange{Mode: &mode}, true); !errors.Is(err, ErrDraining) {
		t.Fatalf("chmod while draining: %v", err)
	}
	if _, err := old.Setattr(ctx, 0, true, AttrChange{}, true); !errors.Is(err, ErrDraining) {
		t.Fatalf("truncate while draining: %v", err)
	}
	if err := e.root.Unlink(ctx, "old"); !errors.Is(err, ErrDraining) {
		t.Fatalf("unlink while draining: %v", err)
	}
	write(t, h, 9, "!") // a file being written goes on

	if n := e.fs.Pending(); n != 2 {
		t.Fatalf("Pending = %d, want 2", n)
	}
	if err := e.fs.SyncAll(ctx); err != nil {
		t.Fatal(err)
	}
	if got := e.content(t, "p/open"); got != "kept open!" {
		t.Fatalf("open file uploaded as %q", got)
	}
	if got := e.content(t, "p/orphan"); got != "forgotten" {
		t.Fatalf("orphan uploaded as %q", got)
	}
	if n := e.fs.Pending(); n != 0 {
		t.Fatalf("Pending = %d after SyncAll", n)
	}
	h.Release()
}

// TestCoreSyncAllReportsFailures: a file whose upload fails at unmount is reported, and stays
// pending; nothing partial is in the bucket.
func TestCoreSyncAllReportsFailures(t *testing.T) {
	e := newCore(t, Config{})
	h, err := e.root.Create(ctx, Caller{}, "f", 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	write(t, h, 0, "data")
	boom := errors.New("injected")
	e.b.SetFault(func(op memstore.Op, name string) error {
		if op == memstore.OpCommit {
			return boom
		}
		return nil
	})
	if err := e.fs.SyncAll(ctx); !errors.Is(err, boom) {
		t.Fatalf("SyncAll: %v, want the injected failure", err)
	}
	if got := e.b.Names(""); len(got) != 0 {
		t.Fatalf("objects after a failed upload: %v", got)
	}
	if e.fs.Pending() != 1 {
		t.Fatal("the failed file is not pending")
	}
}

// TestCoreUnlinkOpenFile: unlink deletes the generation the mount knows; a handle still open
// reads on and its changes are never uploaded; a generation replaced behind the mount is not
// deleted.
func TestCoreUnlinkOpenFile(t *testing.T) {
	e := newCore(t, Config{})
	if _, err := e.b.Put("p/f", []byte("bytes"), nil); err != nil {
		t.Fatal(err)
	}
	f := e.lookupFile(t, e.root, "f")
	h, _, err := f.Open(ctx, true, false, false)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	write(t, h, 0, "B")
	if err := e.root.Unlink(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if got := e.b.Names(""); len(got) != 0 {
		t.Fatalf("bucket after unlink: %v", got)
	}
	if got := readAll(t, h, 16); got != "Bytes" {
		t.Fatalf("the open handle reads %q", got)
	}
	if err := h.Flush(ctx); err != nil || len(e.b.Names("")) != 0 {
		t.Fatalf("close of an unlinked file: %v, bucket %v", err, e.b.Names(""))
	}

	if _, err := e.b.Put("p/g", []byte("one"), nil); err != nil {
		t.Fatal(err)
	}
	e.lookupFile(t, e.root, "g")
	if _, err := e.b.Put("p/g", []byte("two"), nil); err != nil {
		t.Fatal(err)
	}
	if err := e.root.Unlink(ctx, "g"); !errors.Is(err, ErrStale) {
		t.Fatalf("unlink of a replaced generation: %v, want ErrStale", err)
	}
	if got := e.content(t, "p/g"); got != "two" {
		t.Fatalf("the newer generation was deleted: %q", got)
	}
}

// TestCorePassthroughJoins: on a read-only mount with passthrough, a wholly cached file opens
// in passthrough mode, and concurrent opens join on the same generation.
func TestCorePassthroughJoins(t *testing.T) {
	e := newCore(t, Config{ReadOnly: true})
	data := make([]byte, 300<<10)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if _, err := e.b.Put("p/big", data, nil); err != nil {
		t.Fatal(err)
	}
	f := e.lookupFile(t, e.root, "big")
	if _, _, err := f.Open(ctx, true, false, false); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("open for writing on a read-only mount: %v", err)
	}
	first, _, err := f.Open(ctx, false, false, true)
	if err != nil {
		t.Fatal(err)
	}
	if first.Whole != nil {
		t.Fatal("passthrough before the object is cached")
	}
	if got := readAll(t, first, len(data)+1); got != string(data) {
		t.Fatal("first read differs")
	}
	first.Release()
	// The chunks reach the cache's disk in the background: wait until the object is whole there.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if w, ok := e.fs.cfg.Cache.OpenWhole(e.c.objectOf("big", f.Info())); ok {
			w.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the object never became whole in the cache")
		}
	}

	var wg sync.WaitGroup
	opens := make([]*OpenFile, 4)
	for i := range opens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, _, err := f.Open(ctx, false, false, true)
			if err != nil {
				t.Error(err)
				return
			}
			opens[i] = h
		}()
	}
	wg.Wait()
	for i, h := range opens {
		if h == nil {
			t.FailNow()
		}
		if h.Whole == nil || h.Gen != f.Generation() {
			t.Errorf("open %d: passthrough %v, generation %d (file %d)", i, h.Whole != nil, h.Gen, f.Generation())
		}
	}
	for _, h := range opens {
		h.Release()
	}
}

// TestCoreReplacedByDirectory: a file replaced behind the mount by a directory of the same
// name is a directory to unlink, rmdir and rename, though its old file is still registered.
func TestCoreReplacedByDirectory(t *testing.T) {
	e := newCore(t, Config{TTL: -1})
	if _, err := e.b.Put("p/x", []byte("file"), nil); err != nil {
		t.Fatal(err)
	}
	old := e.lookupFile(t, e.root, "x")
	if err := e.b.Delete(ctx, "p/x", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.b.Put("p/x/y", []byte("below"), nil); err != nil {
		t.Fatal(err)
	}
	info, at, err := e.root.Lookup(ctx, "x")
	if err != nil || info.Kind != KindDir {
		t.Fatalf("lookup after the replacement: %+v, %v", info, err)
	}
	e.root.Child("x", info, at)
	if err := e.root.Unlink(ctx, "x"); !errors.Is(err, ErrIsDir) {
		t.Fatalf("unlink: %v, want ErrIsDir", err)
	}
	if err := e.root.Rmdir(ctx, "x"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("rmdir: %v, want ErrNotEmpty", err)
	}
	if err := e.root.Rename(ctx, "x", e.root, "z", false); err != nil {
		t.Fatal(err)
	}
	if got := e.b.Names(""); !slices.Equal(got, []string{"p/z/y"}) {
		t.Fatalf("bucket after renaming the directory: %v", got)
	}
	if old.Path() != "x" {
		t.Fatalf("the stale file moved with the directory: %q", old.Path())
	}
}

// TestCoreCreateOverStaleNode: a file made through the mount where the mount still knew one
// that was deleted behind it is a new file; the old one is detached, not shared.
func TestCoreCreateOverStaleNode(t *testing.T) {
	e := newCore(t, Config{TTL: -1})
	if _, err := e.b.Put("p/s", []byte("old"), nil); err != nil {
		t.Fatal(err)
	}
	old := e.lookupFile(t, e.root, "s")
	if err := e.b.Delete(ctx, "p/s", 0); err != nil {
		t.Fatal(err)
	}
	info, err := e.root.Mknod(ctx, Caller{}, "s", 0o644, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := e.root.Child("s", info, time.Now()).(*File)
	if !ok || f == old {
		t.Fatalf("mknod over a stale file gave %T (the old file: %v)", f, f == old)
	}
	if _, unlinked, _ := old.Attr(ctx, nil); !unlinked {
		t.Fatal("the stale file is not detached")
	}
	if f.Generation() != info.Gen {
		t.Fatalf("new file knows generation %d, object is %d", f.Generation(), info.Gen)
	}
}
