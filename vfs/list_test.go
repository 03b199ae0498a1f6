package vfs

import (
	"context"
	"fmt"
	"testing"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store/memstore"
)

// TestListDir: the listing rules of SEMANTICS.md "Connections and paths", over several pages.
func TestListDir(t *testing.T) {
	b := memstore.New("ls")
	put(t, b, "c/", "")          // the directory's own placeholder: not an entry
	put(t, b, "c/a", "file")     // a file
	put(t, b, "c/d", "shadowed") // an object shadowed by the directory d/
	put(t, b, "c/d/x", "x")      // makes d a directory
	put(t, b, "c/e/", "")        // a directory with a placeholder...
	b.Put("c/f/", nil, posixmd.Attrs{Mode: 0o711, HasMode: true}.Metadata())
	put(t, b, "c/.plxfs-tmp/p", "part") // the reserved directory: hidden
	for i := range 1005 {               // more than a page
		put(t, b, fmt.Sprintf("c/many/%04d", i), "")
		put(t, b, fmt.Sprintf("c/z%04d", i), "")
	}
	entries, hidden, placeholder, err := ListDir(context.Background(), b, "c/")
	if err != nil {
		t.Fatal(err)
	}
	if placeholder == nil || placeholder.Name != "c/" {
		t.Fatalf("own placeholder: %+v", placeholder)
	}
	if len(entries) != 5+1005 {
		t.Fatalf("%d entries", len(entries))
	}
	want := []struct {
		name string
		kind Kind
	}{{"a", KindFile}, {"d", KindDir}, {"e", KindDir}, {"f", KindDir}, {"many", KindDir}}
	for i, w := range want {
		if e := entries[i]; e.Name != w.name || e.Info.Kind != w.kind {
			t.Errorf("entry %d: %s %v, want %s %v", i, e.Name, e.Info.Kind, w.name, w.kind)
		}
	}
	if f := entries[3].Info; !f.PlaceholderKnown || f.Posix.Mode != 0o711 || f.Gen == 0 {
		t.Errorf("f's attributes from its placeholder: %+v", f)
	}
	if d := entries[1].Info; !d.PlaceholderKnown || d.Gen != 0 {
		t.Errorf("d has no placeholder: %+v", d)
	}
	if entries[len(entries)-1].Name != "z1004" {
		t.Errorf("last entry %s: not sorted, or a page lost", entries[len(entries)-1].Name)
	}
	reasons := map[string]bool{}
	for _, h := range hidden {
		reasons[h.Name] = true
	}
	if !reasons["c/d"] || !reasons["c/.plxfs-tmp/"] || len(hidden) != 2 {
		t.Errorf("hidden: %+v", hidden)
	}
}
