package vfs

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

func TestAttrsApply(t *testing.T) {
	shown, now := t0.Add(-time.Hour), t0
	base := posixmd.Attrs{Mode: 0o010644, HasMode: true} // a FIFO: the type is kept
	mode, uid := uint32(0o4755), uint32(42)

	pa, changed := Attrs{POSIX: true}.Apply(base, AttrChange{Mode: &mode, UID: &uid}, shown, now)
	if !changed || pa.Mode != 0o014755 || pa.UID != 42 || !pa.HasUID || !pa.Mtime.Equal(shown) || !pa.Ctime.Equal(now) {
		t.Fatalf("chmod+chown: %+v, %v (the file type stays, mtime is the one shown)", pa, changed)
	}
	if _, changed := (Attrs{POSIX: true}).Apply(base, AttrChange{}, shown, now); changed {
		t.Fatal("no change reported as one")
	}
	pa, changed = Attrs{POSIX: false}.Apply(base, AttrChange{Mode: &mode}, shown, now)
	if changed || pa.Mode != base.Mode {
		t.Fatalf("chmod without POSIX metadata: %+v, %v; want ignored", pa, changed)
	}
	mt := t0.Add(time.Minute)
	pa, changed = Attrs{POSIX: false}.Apply(base, AttrChange{Mtime: &mt}, shown, now)
	if !changed || !pa.Mtime.Equal(mt) {
		t.Fatalf("utimensat without POSIX metadata: %+v", pa)
	}
	if md := (Attrs{POSIX: false}).Patch(base, pa, AttrChange{Mtime: &mt}); len(md) != 1 || md[posixmd.PlxfsMtimeKey] == "" {
		t.Fatalf("patch without POSIX metadata: %v", md)
	}
	if md := (Attrs{POSIX: false}).Patch(posixmd.Attrs{}, posixmd.Attrs{}, AttrChange{}); md != nil {
		t.Fatalf("patch of nothing: %v", md)
	}
	if md := (Attrs{POSIX: true}).Metadata(pa); len(md) == 0 {
		t.Fatal("no metadata with POSIX on")
	}
}

// TestAttrsPatchOnlyWhatChanges: a patch carries the attributes its call sets (and the ctime),
// never the others the mount read earlier, which may be stale: a chmod does not write the
// owner back, a chown does not write the mode back.
func TestAttrsPatchOnlyWhatChanges(t *testing.T) {
	old := posixmd.Attrs{Mode: 0o644, HasMode: true, UID: 1, HasUID: true, GID: 2, HasGID: true, Mtime: t0}
	a := Attrs{POSIX: true}
	mode, uid, gid := uint32(0o600), uint32(1234), uint32(2345)
	cases := []struct {
		name   string
		change AttrChange
		want   []string
	}{
		{"chmod", AttrChange{Mode: &mode}, []string{posixmd.ModeKey, posixmd.PlxfsModeKey, posixmd.PlxfsCtimeKey}},
		{"chown", AttrChange{UID: &uid, GID: &gid}, []string{posixmd.UIDKey, posixmd.GIDKey, posixmd.PlxfsCtimeKey}},
		{"touch", AttrChange{Mtime: &t0, Atime: &t0}, []string{posixmd.MtimeKey, posixmd.PlxfsMtimeKey, posixmd.AtimeKey, posixmd.PlxfsAtimeKey, posixmd.PlxfsCtimeKey}},
	}
	for _, c := range cases {
		pa, _ := a.Apply(old, c.change, t0, t0.Add(time.Second))
		md := a.Patch(old, pa, c.change)
		if len(md) != len(c.want) {
			t.Errorf("%s: patch %v, want exactly the keys %v", c.name, md, c.want)
		}
		for _, k := range c.want {
			if _, ok := md[k]; !ok {
				t.Errorf("%s: patch %v lacks %s", c.name, md, k)
			}
		}
	}
	// An object with no recorded mtime gets the one shown, so that the patch's update time
	// never becomes its mtime.
	bare := posixmd.Attrs{}
	pa, _ := a.Apply(bare, AttrChange{Mode: &mode}, t0, t0.Add(time.Second))
	if md := a.Patch(bare, pa, AttrChange{Mode: &mode}); md[posixmd.MtimeKey] == "" || md[posixmd.UIDKey] != "" {
		t.Fatalf("chmod of an object without recorded times: %v (want its mtime recorded, no owner)", md)
	}
}

// TestPatchPrecondition: chmod patches the generation the mount knows; one replaced behind
// the mount fails with ErrPrecondition and keeps its metadata.
func TestPatchPrecondition(t *testing.T) {
	o, b := newObjects(t)
	ctx := context.Background()
	old := put(t, b, "c/f", "1")
	a, err := o.Patch(ctx, "f", old.Generation, map[string]string{"k": "v"})
	if err != nil || a.Metadata["k"] != "v" {
		t.Fatalf("Patch: %+v, %v", a, err)
	}
	put(t, b, "c/f", "2")
	if _, err := o.Patch(ctx, "f", old.Generation, map[string]string{"k": "w"}); !errors.Is(err, store.ErrPrecondition) && !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("Patch of a replaced generation: %v", err)
	}
	live, _ := b.Stat(ctx, "c/f")
	if live.Metadata["k"] != "" {
		t.Fatal("the new generation was patched")
	}
}
