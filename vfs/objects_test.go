package vfs

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
)

// newObjects is a connection with prefix "c/" on a fresh in-memory bucket.
func newObjects(t *testing.T) (*Objects, *memstore.Bucket) {
	t.Helper()
	b := memstore.New("core")
	return NewObjects(b, "c/"), b
}

func put(t *testing.T, b *memstore.Bucket, name, data string) store.Attrs {
	t.Helper()
	a, err := b.Put(name, []byte(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func content(t *testing.T, b *memstore.Bucket, name string) string {
	t.Helper()
	data, ok := b.Content(name)
	if !ok {
		t.Fatalf("%s does not exist", name)
	}
	return string(data)
}

func TestPutNewRefusesAnExistingName(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	a, err := o.PutNew(ctx, "d/", nil, store.WriteOptions{IfGen: 7, ContentType: ContentType("d/")})
	if err != nil || a.Name != "c/d/" {
		t.Fatalf("PutNew: %+v, %v", a, err)
	}
	if _, err := o.PutNew(ctx, "d/", nil, store.WriteOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("second PutNew: %v, want ErrExists", err)
	}
	if got := b.Names(""); !slices.Equal(got, []string{"c/d/"}) {
		t.Fatalf("names %v", got)
	}
}

// TestDeleteReplacedGeneration: unlink deletes the generation the mount knows; a generation
// replaced behind the mount is not deleted (ErrStale), one already gone is fine.
func TestDeleteReplacedGeneration(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	old := put(t, b, "c/f", "one")
	put(t, b, "c/f", "two") // replaced behind the mount
	if err := o.Delete(ctx, "f", old.Generation); !errors.Is(err, ErrStale) {
		t.Fatalf("delete of a replaced generation: %v, want ErrStale", err)
	}
	if content(t, b, "c/f") != "two" {
		t.Fatal("the new generation was deleted")
	}
	live := put(t, b, "c/g", "g")
	if err := o.Delete(ctx, "g", live.Generation); err != nil {
		t.Fatal(err)
	}
	if err := o.Delete(ctx, "g", live.Generation); err != nil {
		t.Fatalf("delete of a generation already gone: %v", err)
	}
}

func TestCheckEmptyAndRemoveDir(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	put(t, b, "c/d/", "")
	if err := o.CheckEmpty(ctx, "d"); err != nil {
		t.Fatalf("placeholder only: %v", err)
	}
	put(t, b, "c/d/.hidden~", "x") // hidden from listings, still an object
	if err := o.CheckEmpty(ctx, "d"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("with an object: %v", err)
	}
	put(t, b, "c/e/sub/x", "x")
	if err := o.CheckEmpty(ctx, "e"); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("with a subdirectory: %v", err)
	}
	if err := o.RemoveDir(ctx, "e"); err != nil {
		t.Fatalf("RemoveDir of a directory without placeholder: %v", err)
	}
	put(t, b, "c/z/", "")
	if err := o.RemoveDir(ctx, "z"); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Content("c/z/"); ok {
		t.Fatal("placeholder still there")
	}
}

// TestMoveFile: rename of a file is copy + delete of the generation the mount knows.
func TestMoveFile(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	src := put(t, b, "c/a", "aaa")
	a, err := o.MoveFile(ctx, "a", src.Generation, "b", 0)
	if err != nil || a.Name != "c/b" || a.Size != 3 {
		t.Fatalf("MoveFile: %+v, %v", a, err)
	}
	if got := b.Names(""); !slices.Equal(got, []string{"c/b"}) {
		t.Fatalf("names %v", got)
	}
}

// TestMoveFileOverwriteWithPrecondition: a rename onto an existing file replaces the target
// generation the mount knows, and nothing else: a target replaced behind the mount, or one
// that appeared where the mount saw none, fails the copy with ErrPrecondition and leaves both
// objects as they were.
func TestMoveFileOverwriteWithPrecondition(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	src := put(t, b, "c/a", "new")
	dst := put(t, b, "c/b", "old")
	if _, err := o.MoveFile(ctx, "a", src.Generation, "b", dst.Generation); err != nil {
		t.Fatal(err)
	}
	if content(t, b, "c/b") != "new" {
		t.Fatal("target not replaced")
	}

	src = put(t, b, "c/a", "mine")
	seen := put(t, b, "c/t", "seen")
	put(t, b, "c/t", "theirs") // replaced behind the mount
	a, err := o.MoveFile(ctx, "a", src.Generation, "t", seen.Generation)
	if !errors.Is(err, store.ErrPrecondition) || a.Generation != 0 {
		t.Fatalf("onto a replaced target: %+v, %v; want ErrPrecondition and nothing moved", a, err)
	}
	if content(t, b, "c/t") != "theirs" || content(t, b, "c/a") != "mine" {
		t.Fatal("a failed rename changed the bucket")
	}
	if _, err := o.MoveFile(ctx, "a", src.Generation, "t", 0); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("onto a target the mount did not see: %v", err)
	}
}

// TestMoveFileSourceReplaced: a source generation replaced behind the mount is not renamed.
func TestMoveFileSourceReplaced(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	old := put(t, b, "c/a", "one")
	put(t, b, "c/a", "two")
	a, err := o.MoveFile(ctx, "a", old.Generation, "b", 0)
	if err == nil || a.Generation != 0 {
		t.Fatalf("MoveFile of a replaced generation: %+v, %v", a, err)
	}
	if got := b.Names(""); !slices.Equal(got, []string{"c/a"}) {
		t.Fatalf("names %v", got)
	}
}

// TestMoveFileDeleteFails: a copy that landed is a move even when the delete fails; the caller
// gets the copy's attributes with the error.
func TestMoveFileDeleteFails(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	src := put(t, b, "c/a", "aaa")
	boom := errors.New("boom")
	b.SetFault(func(op memstore.Op, name string) error {
		if op == memstore.OpDelete {
			return boom
		}
		return nil
	})
	a, err := o.MoveFile(ctx, "a", src.Generation, "b", 0)
	if !errors.Is(err, boom) || a.Generation == 0 || a.Name != "c/b" {
		t.Fatalf("MoveFile with a failing delete: %+v, %v", a, err)
	}
}

func TestMoveDir(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	put(t, b, "c/d/", "")
	put(t, b, "c/d/x", "x")
	put(t, b, "c/d/s/y", "y")
	put(t, b, "c/e/", "") // an empty target directory
	moved, err := o.MoveDir(ctx, "d", "e", true)
	if err != nil {
		t.Fatal(err)
	}
	if got := b.Names(""); !slices.Equal(got, []string{"c/e/", "c/e/s/y", "c/e/x"}) {
		t.Fatalf("names %v", got)
	}
	for _, p := range []string{"e/", "e/x", "e/s/y"} {
		if a, ok := moved[p]; !ok || a.Name != "c/"+p {
			t.Errorf("moved[%q] = %+v, %v", p, a, ok)
		}
	}

	// A directory the caller knows only from its own state moves as a placeholder.
	moved, err = o.MoveDir(ctx, "implicit", "f", false)
	if err != nil || moved == nil || len(moved) != 0 {
		t.Fatalf("MoveDir of an empty implicit directory: %v, %v", moved, err)
	}
	if _, ok := b.Content("c/f/"); !ok {
		t.Fatal("no placeholder at the target")
	}
}

// TestMoveDirFailures: a failed copy moves nothing (nil map: the caller changes no state); a
// failed delete leaves both names, and the caller gets the map.
func TestMoveDirFailures(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	put(t, b, "c/d/x", "x")
	put(t, b, "c/d/y", "y")
	boom := errors.New("boom")
	fault := memstore.OpCopy
	b.SetFault(func(op memstore.Op, name string) error {
		if op == fault && (name == "c/d/y" || name == "c/e/y") {
			return boom
		}
		return nil
	})
	if moved, err := o.MoveDir(ctx, "d", "e", false); !errors.Is(err, boom) || moved != nil {
		t.Fatalf("failing copy: %v, %v", moved, err)
	}
	fault = memstore.OpDelete
	if moved, err := o.MoveDir(ctx, "d", "g", false); !errors.Is(err, boom) || len(moved) != 2 {
		t.Fatalf("failing delete: %v, %v", moved, err)
	}
	if _, ok := b.Content("c/d/y"); !ok {
		t.Fatal("the source whose delete failed is gone")
	}
}

func TestSuccessors(t *testing.T) {
	var s Successors[string]
	if _, _, ok := s.Follow(1); ok {
		t.Fatal("empty Successors follows")
	}
	s.Replaced(0, 5, "never uploaded") // nothing to follow from
	s.Replaced(3, 3, "same")
	s.Replaced(1, 2, "two")
	s.Replaced(2, 4, "four")
	if g, v, ok := s.Follow(1); !ok || g != 4 || v != "four" {
		t.Fatalf("Follow(1) = %d %q %v", g, v, ok)
	}
	if _, _, ok := s.Follow(3); ok {
		t.Fatal("a generation replaced by itself follows")
	}
	s.Clear()
	if _, _, ok := s.Follow(1); ok {
		t.Fatal("Follow after Clear")
	}
}

// TestStat: a lookup in the bucket; a directory wins over an object of the same name.
func TestStat(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	put(t, b, "c/f", "data")
	put(t, b, "c/both", "object")
	put(t, b, "c/both/x", "x")
	put(t, b, "c/d/", "")
	for _, c := range []struct {
		p           string
		kind        Kind
		placeholder bool
	}{{"f", KindFile, false}, {"both", KindDir, false}, {"d", KindDir, true}} {
		info, err := o.Stat(ctx, c.p)
		if err != nil || info.Kind != c.kind || (c.placeholder && info.Gen == 0) {
			t.Errorf("Stat(%s) = %+v, %v; want %v", c.p, info, err, c.kind)
		}
	}
	if _, err := o.Stat(ctx, "none"); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of nothing: %v", err)
	}

	// Each answer counts on its own: a failed listing does not fail the lookup of an object
	// the stat found, but a name the stat did not find may still be a directory; a failed
	// stat does not fail the lookup of a directory the listing showed.
	boom := errors.New("boom")
	failing := memstore.OpList
	b.SetFault(func(op memstore.Op, name string) error {
		if op == failing {
			return boom
		}
		return nil
	})
	if info, err := o.Stat(ctx, "f"); err != nil || info.Kind != KindFile || info.Size != 4 {
		t.Errorf("Stat of a file while listings fail = %+v, %v; want the file", info, err)
	}
	if _, err := o.Stat(ctx, "none"); !errors.Is(err, boom) || errors.Is(err, store.ErrNotExist) {
		t.Errorf("Stat of nothing while listings fail: %v; want the listing's error, not ErrNotExist", err)
	}
	failing = memstore.OpStat
	if info, err := o.Stat(ctx, "d"); err != nil || info.Kind != KindDir {
		t.Errorf("Stat of a directory while stats fail = %+v, %v; want the directory", info, err)
	}
	if _, err := o.Stat(ctx, "f"); !errors.Is(err, boom) {
		t.Errorf("Stat of a file while stats fail: %v; want the stat's error", err)
	}
}
