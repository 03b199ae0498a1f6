package connspec

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestSegmentOK(t *testing.T) {
	tests := []struct {
		seg string
		ok  bool
	}{
		{"a", true},
		{"...", true},
		{".hidden", true},
		{"a\\b", true},
		{"\xff\xfe", true}, // not UTF-8: allowed, Linux paths are bytes
		{strings.Repeat("x", 255), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"a\x00", false},
		{strings.Repeat("x", 256), false},
	}
	for _, tc := range tests {
		err := SegmentOK(tc.seg)
		if (err == nil) != tc.ok {
			t.Errorf("SegmentOK(%q) = %v, want ok=%v", tc.seg, err, tc.ok)
		}
		if err != nil && !errors.Is(err, ErrUnsafeName) {
			t.Errorf("SegmentOK(%q) error %v does not wrap ErrUnsafeName", tc.seg, err)
		}
	}
}

func TestNameToPath(t *testing.T) {
	tests := []struct {
		name, path string
		err        string
	}{
		{name: "a", path: "a"},
		{name: "a/b/c.txt", path: "a/b/c.txt"},
		{name: "a/b/", path: "a/b"},
		{name: "a/", path: "a"},
		{name: "a\\b", path: "a\\b"},
		{name: "...", path: "..."},
		{name: "a/.b/c", path: "a/.b/c"},
		{name: "ü/\xff", path: "ü/\xff"},
		{name: strings.Repeat("x", 255) + "/y", path: strings.Repeat("x", 255) + "/y"},

		{name: "", err: "names no file or directory"},
		{name: "/", err: "absolute name"},
		{name: "/etc/passwd", err: "absolute name"},
		{name: "a//b", err: "empty path segment"},
		{name: "a/b//", err: "empty path segment"},
		{name: "..", err: `".." segment`},
		{name: "../x", err: `".." segment`},
		{name: "a/../../x", err: `".." segment`},
		{name: "a/..", err: `".." segment`},
		{name: "./a", err: `"." segment`},
		{name: ".", err: `"." segment`},
		{name: "a/\x00/b", err: "NUL byte"},
		{name: strings.Repeat("x", 256), err: "segment is 256 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NameToPath(tc.name)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrUnsafeName) {
					t.Fatalf("NameToPath(%q) = %q, %v; want an ErrUnsafeName containing %q", tc.name, p, err, tc.err)
				}
				return
			}
			if err != nil || p != tc.path {
				t.Fatalf("NameToPath(%q) = %q, %v; want %q", tc.name, p, err, tc.path)
			}
			if !filepath.IsLocal(p) {
				t.Errorf("NameToPath(%q) = %q is not local", tc.name, p)
			}
			back, err := PathToName(p)
			if err != nil || back != strings.TrimSuffix(tc.name, "/") {
				t.Errorf("PathToName(%q) = %q, %v; want %q", p, back, err, strings.TrimSuffix(tc.name, "/"))
			}
		})
	}
}

func TestPathToName(t *testing.T) {
	tests := []struct {
		path, name string
		err        bool
	}{
		{path: "a", name: "a"},
		{path: "a/b/c.txt", name: "a/b/c.txt"},
		{path: ".hidden/x", name: ".hidden/x"},
		{path: "", err: true},
		{path: ".", err: true},
		{path: "/a", err: true},
		{path: "../a", err: true},
		{path: "a/../b", err: true},
		{path: "a/./b", err: true},
		{path: "a//b", err: true},
		{path: "a/", err: true},
		{path: "a/\x00", err: true},
		{path: strings.Repeat("x", 256), err: true},
	}
	for _, tc := range tests {
		name, err := PathToName(tc.path)
		if tc.err {
			if err == nil || !errors.Is(err, ErrUnsafeName) {
				t.Errorf("PathToName(%q) = %q, %v; want an ErrUnsafeName", tc.path, name, err)
			}
			continue
		}
		if err != nil || name != tc.name {
			t.Errorf("PathToName(%q) = %q, %v; want %q", tc.path, name, err, tc.name)
		}
	}
}

func TestSafeJoin(t *testing.T) {
	tests := []struct {
		root, rel, want string
		err             bool
	}{
		{root: "/data", rel: "a/b", want: "/data/a/b"},
		{root: "/data/", rel: "a", want: "/data/a"},
		{root: "/data", rel: ".", want: "/data"},
		{root: "/data", rel: "a/../b", want: "/data/b"},
		{root: "rel/dir", rel: "x", want: "rel/dir/x"},
		{root: "/", rel: "etc", want: "/etc"},
		{root: "/data", rel: "..", err: true},
		{root: "/data", rel: "../data2/x", err: true},
		{root: "/data", rel: "a/../../x", err: true},
		{root: "/data", rel: "/etc/passwd", err: true},
		{root: "/data", rel: "", err: true},
		{root: "", rel: "a", err: true},
	}
	for _, tc := range tests {
		got, err := SafeJoin(tc.root, tc.rel)
		if tc.err {
			if err == nil || !errors.Is(err, ErrUnsafeName) {
				t.Errorf("SafeJoin(%q, %q) = %q, %v; want an ErrUnsafeName", tc.root, tc.rel, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("SafeJoin(%q, %q) = %q, %v; want %q", tc.root, tc.rel, got, err, tc.want)
		}
	}
}
