package connspec

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzSegmentOK checks the rule the mount applies to every name it lists: an object name
// relative to the directory being listed ("rel") becomes a directory entry only if SegmentOK
// accepts it, and an accepted name must be exactly one plain component of its directory — it
// can never name the directory itself, its parent, or anything below or beside it. Conversely,
// a name that is one plain component (no NUL, at most 255 bytes) must not be hidden.
//
//	go test ./connspec -run '^$' -fuzz FuzzSegmentOK -fuzztime 60s
func FuzzSegmentOK(f *testing.F) {
	for _, s := range []string{"a", "..", ".", "", "a/b", "/", "x\x00y", strings.Repeat("z", 256), "..\\..", "\xff\xfe", ".plxfs-tmp", " ", "-", "a\nb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, seg string) {
		const dir = "/mnt/plx/conn/sub"
		joined := filepath.Join(dir, seg)
		plain := filepath.Dir(joined) == dir && filepath.Base(joined) == seg &&
			!strings.ContainsRune(seg, 0) && len(seg) <= maxSegment
		err := SegmentOK(seg)
		switch {
		case err == nil && !plain:
			t.Fatalf("SegmentOK(%q) accepts a name that is not one plain component: it joins to %q", seg, joined)
		case err != nil && plain:
			t.Fatalf("SegmentOK(%q) hides a plain file name: %v", seg, err)
		case err != nil:
			if !strings.Contains(err.Error(), ErrUnsafeName.Error()) {
				t.Fatalf("SegmentOK(%q) error %v does not wrap ErrUnsafeName", seg, err)
			}
			return
		}
		// An accepted segment is also a valid object name below a directory, both ways.
		p, err := NameToPath("sub/" + seg)
		if err != nil || p != filepath.Join("sub", seg) {
			t.Fatalf("NameToPath(%q) = %q, %v", "sub/"+seg, p, err)
		}
		if n, err := PathToName(filepath.Join("sub", seg)); err != nil || n != "sub/"+seg {
			t.Fatalf("PathToName(%q) = %q, %v", filepath.Join("sub", seg), n, err)
		}
	})
}
