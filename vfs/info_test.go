package vfs

import (
	"testing"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

func TestInfoFromAttrs(t *testing.T) {
	a := store.Attrs{Name: "f", Size: 5, Generation: 3, Updated: t0, CRC32C: 7, HasCRC32C: true}
	if i := InfoFromAttrs(a); i.Kind != KindFile || i.Size != 5 || i.Gen != 3 || !i.Mtime.Equal(t0) || !i.HasCRC {
		t.Fatalf("file: %+v", i)
	}
	a.Metadata = map[string]string{SymlinkKey: "target"}
	if i := InfoFromAttrs(a); i.Kind != KindSymlink || i.Target != "target" || i.Size != 6 {
		t.Fatalf("symlink: %+v", i)
	}
	a.Metadata = posixmd.Attrs{Mode: 0o010644, HasMode: true}.Metadata()
	if i := InfoFromAttrs(a); i.Kind != KindSpecial || i.Size != 0 {
		t.Fatalf("FIFO: %+v", i)
	}
	if d := DirInfo(nil); d.Kind != KindDir || !d.PlaceholderKnown || d.Gen != 0 {
		t.Fatalf("directory without placeholder: %+v", d)
	}
	p := store.Attrs{Name: "d/", Generation: 9, Metadata: posixmd.Attrs{Mode: 0o040711, HasMode: true}.Metadata()}
	if d := DirInfo(&p); d.Kind != KindDir || d.Gen != 9 || d.Posix.Mode != 0o711 || !d.PlaceholderKnown {
		t.Fatalf("directory with placeholder: %+v", d)
	}
}
