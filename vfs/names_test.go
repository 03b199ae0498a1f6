package vfs

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckNewName(t *testing.T) {
	o := NewObjects(nil, "c/")
	for _, c := range []struct {
		dir, name string
		want      error
	}{
		{"", "ok.txt", nil},
		{"a/b", "ok", nil},
		{"", TempDirName, ErrReservedName},
		{"", strings.Repeat("n", MaxNameLen+1), ErrNameTooLong},
		{"", "..", ErrBadObjectName},
		{"", "bad\nname", ErrBadObjectName},
		{strings.Repeat("d/", 400), strings.Repeat("n", 250), ErrObjectNameTooLong},
	} {
		err := o.CheckNewName(c.dir, c.name)
		if (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("CheckNewName(%.20q, %.20q) = %v, want %v", c.dir, c.name, err, c.want)
		}
	}
}

// TestCheckRename: what rename(2) refuses before anything moves.
func TestCheckRename(t *testing.T) {
	for _, c := range []struct {
		name              string
		src, dst          string
		from, to          Kind
		exists, noReplace bool
		move              bool
		want              error
	}{
		{"file to a new name", "a", "b", KindFile, 0, false, false, true, nil},
		{"onto an existing file", "a", "b", KindFile, KindFile, true, false, true, nil},
		{"RENAME_NOREPLACE onto an existing name", "a", "b", KindFile, KindFile, true, true, false, ErrExists},
		{"RENAME_NOREPLACE onto itself", "a", "a", KindFile, KindFile, true, true, false, ErrExists},
		{"onto itself", "a", "a", KindFile, KindFile, true, false, false, nil},
		{"directory onto a file", "d", "f", KindDir, KindFile, true, false, false, ErrNotDir},
		{"file onto a directory", "f", "d", KindFile, KindDir, true, false, false, ErrIsDir},
		{"symlink onto a directory", "l", "d", KindSymlink, KindDir, true, false, false, ErrIsDir},
		{"directory onto a directory", "d", "e", KindDir, KindDir, true, false, true, nil},
	} {
		move, err := CheckRename(c.src, c.dst, c.from, c.to, c.exists, c.noReplace)
		if move != c.move || (c.want == nil) != (err == nil) || (c.want != nil && !errors.Is(err, c.want)) {
			t.Errorf("%s: move %v, err %v; want %v, %v", c.name, move, err, c.move, c.want)
		}
	}
	if !IntoItself("a", "a/b") || !IntoItself("a", "a") || IntoItself("a", "ab") {
		t.Error("IntoItself")
	}
}

func TestHideReason(t *testing.T) {
	if HideReason("ok") != "" || HideReason(TempDirName) == "" || HideReason("a/b") == "" {
		t.Error("HideReason")
	}
	if ChildPath("", "x") != "x" || ChildPath("a", "x") != "a/x" {
		t.Error("ChildPath")
	}
	if KindDir.String() != "dir" || Kind(0).String() != "unknown" {
		t.Error("Kind.String")
	}
}
