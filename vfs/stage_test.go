package vfs

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestStageLifecycle(t *testing.T) {
	g := NewGate(false)
	st, err := NewStage(g, t.TempDir(), 7, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s := st.State(); s.Filled || s.Dirty || s.BaseGen != 7 || s.BaseSize != 5 {
		t.Fatalf("stage of an existing object: %+v", s)
	}
	st.Filled(5) // the object was copied in
	k, err := st.WriteAt([]byte("hello"), 3)
	if err != nil || k != 5 {
		t.Fatal(k, err)
	}
	if prev := st.Wrote(3, k, t0); prev != 5 {
		t.Fatalf("size before the write: %d", prev)
	}
	s := st.State()
	if !s.Dirty || s.Size != 8 || s.Version != 1 || !s.ModTime().Equal(t0) {
		t.Fatalf("after a write: %+v", s)
	}
	buf := make([]byte, 16)
	if k, err := st.ReadAt(buf, 6); err != nil || string(buf[:k]) != "lo" {
		t.Fatalf("ReadAt clamps to the size: %q, %v", buf[:k], err)
	}
	mt := t0.Add(-time.Hour)
	st.SetMtime(mt)
	if !st.State().ModTime().Equal(mt) {
		t.Fatal("explicit mtime not the upload's")
	}

	// An upload of version 1 while version 2 is written keeps the stage dirty.
	st.Wrote(0, 1, t0.Add(time.Second))
	st.Uploaded(1, 9, 8)
	if s := st.State(); !s.Dirty || s.BaseGen != 9 || !s.Mtime.IsZero() {
		t.Fatalf("upload of an older version: %+v", s)
	}
	st.Uploaded(st.State().Version, 10, 8)
	if s := st.State(); s.Dirty || s.BaseGen != 10 {
		t.Fatalf("upload of the current version: %+v", s)
	}

	if err := st.Truncate(2); err != nil {
		t.Fatal(err)
	}
	st.Truncated(2, t0)
	if s := st.State(); !s.Dirty || s.Size != 2 || !s.Filled {
		t.Fatalf("after a truncate: %+v", s)
	}
	st.Rebase(11, 2)
	st.Clean()
	if s := st.State(); s.Dirty || s.BaseGen != 11 {
		t.Fatalf("after Rebase and Clean: %+v", s)
	}
}

func TestNewFileStage(t *testing.T) {
	st, err := NewStage(NewGate(false), t.TempDir(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if s := st.State(); !s.Filled || s.Dirty {
		t.Fatalf("a new file's stage: %+v, want filled (empty) and clean", s)
	}
	st.Created(t0)
	if s := st.State(); !s.Dirty || !s.Modified.Equal(t0) {
		t.Fatalf("after Created: %+v", s)
	}
}

// TestDrain: after StopWrites no new staging file is made (ErrDraining, EROFS), while a file
// already being written keeps taking writes and still has its changes to upload; a read-only
// mount refuses from the start.
func TestDrain(t *testing.T) {
	g := NewGate(false)
	dir := t.TempDir()
	st, err := NewStage(g, dir, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if g.Refused() != nil || g.Draining() {
		t.Fatal("a fresh gate refuses")
	}
	g.StopWrites()
	if _, err := NewStage(g, dir, 0, 0); !errors.Is(err, ErrDraining) {
		t.Fatalf("new stage while draining: %v, want ErrDraining", err)
	}
	if !errors.Is(g.Refused(), ErrDraining) || !g.Draining() {
		t.Fatal("gate does not refuse while draining")
	}
	k, err := st.WriteAt([]byte("data"), 0)
	if err != nil {
		t.Fatal(err)
	}
	st.Wrote(0, k, t0)
	if s := st.State(); !s.Dirty || s.Size != 4 {
		t.Fatalf("a file being written during the drain: %+v", s)
	}
	if _, err := NewStage(NewGate(true), dir, 0, 0); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only: %v", err)
	}
}
