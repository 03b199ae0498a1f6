package main

import (
	"testing"

	"github.com/plxfs/plxfs/internal/control"
)

// connPath places a changed object (or tree) in a connection on a prefix, or nowhere.
func TestConnPath(t *testing.T) {
	for _, tc := range []struct {
		prefix string
		ch     control.Change
		p      string
		tree   bool
		ok     bool
	}{
		{"", control.Change{Name: "a/b.txt"}, "a/b.txt", false, true},
		{"", control.Change{Name: "", Tree: true}, "", true, true},
		{"pre/", control.Change{Name: "pre/a/b.txt"}, "a/b.txt", false, true},
		{"pre/", control.Change{Name: "pre/sub", Tree: true}, "sub", true, true},
		{"pre/", control.Change{Name: "prefix/a.txt"}, "", false, false},
		{"pre/", control.Change{Name: "other/a.txt"}, "", false, false},
		{"pre/", control.Change{Name: "pre"}, "", false, false}, // an object beside the prefix
		{"pre/", control.Change{Name: "pre", Tree: true}, "", true, true},
		{"a/b/", control.Change{Name: "a", Tree: true}, "", true, true},
		{"a/b/", control.Change{Name: "", Tree: true}, "", true, true},
		{"a/b/", control.Change{Name: "a/bc", Tree: true}, "", false, false},
	} {
		p, tree, ok := connPath(tc.prefix, tc.ch)
		if p != tc.p || tree != tc.tree || ok != tc.ok {
			t.Errorf("connPath(%q, %+v) = %q, %v, %v; want %q, %v, %v", tc.prefix, tc.ch, p, tree, ok, tc.p, tc.tree, tc.ok)
		}
	}
}
