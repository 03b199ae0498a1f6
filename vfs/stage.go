package vfs

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// StageState is what a staging file holds, as one value: Stage.State returns a consistent
// snapshot of it.
type StageState struct {
	Filled   bool      // the file holds the content: the base object was copied in, or replaced
	Dirty    bool      // the file has changes the bucket does not have
	Size     int64     // content size
	BaseGen  int64     // generation the content replaces: the upload precondition (0: must not exist)
	BaseSize int64     // size of BaseGen, for filling
	Mtime    time.Time // explicit modification time to store with the next upload (zero: none)
	Modified time.Time // time of the last change
	Version  uint64    // moves on with every change
}

// ModTime is the modification time the next upload stores: the explicit one, else the last
// local change (not the upload's time: what stat showed before the upload stays true).
func (s StageState) ModTime() time.Time {
	if !s.Mtime.IsZero() {
		return s.Mtime
	}
	return s.Modified
}

// Stage is the local state of a file being written: an unlinked temporary file under the
// staging directory (so the kernel frees it when the process exits, and memory stays bounded
// whatever the file size) holding the whole content the next upload sends, and its state.
//
// Two locks: the IO lock is held shared by writes and exclusive by fills, truncations and
// uploads, so that an upload sends a snapshot no write tears; it is held across I/O and
// network calls and taken before the caller's node lock (File: staging IO → File.mu). mu
// guards the state; it is a leaf. Reads take neither: pread and pwrite of one file are safe
// together, and ReadAt clamps to the size.
type Stage struct {
	f  *os.File // constant
	io sync.RWMutex

	mu sync.Mutex
	s  StageState
}

// NewStage creates an empty staging file in dir, unlinked at once, and refuses while g
// refuses changes. base is the generation it replaces (0: a new file, which starts filled and
// empty; an existing object is copied in before the first change, see Fill).
func NewStage(g *Gate, dir string, baseGen, baseSize int64) (*Stage, error) {
	if err := g.Refused(); err != nil {
		return nil, fmt.Errorf("stage: %w", err)
	}
	tf, err := os.CreateTemp(dir, "stage-*")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	if err := os.Remove(tf.Name()); err != nil {
		tf.Close()
		return nil, fmt.Errorf("unlink staging file: %w", err)
	}
	return &Stage{f: tf, s: StageState{BaseGen: baseGen, BaseSize: baseSize, Filled: baseGen == 0}}, nil
}

// File is the staging file, to upload from or fill the cache with (under the IO lock).
func (st *Stage) File() *os.File { return st.f }

// Close closes the staging file (its space is freed).
func (st *Stage) Close() error { return st.f.Close() }

// LockIO, UnlockIO, RLockIO and RUnlockIO take and release the IO lock.
func (st *Stage) LockIO()    { st.io.Lock() }
func (st *Stage) UnlockIO()  { st.io.Unlock() }
func (st *Stage) RLockIO()   { st.io.RLock() }
func (st *Stage) RUnlockIO() { st.io.RUnlock() }

// State is a snapshot of the stage's state.
func (st *Stage) State() StageState {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.s
}

// Created marks a new file's stage: its (empty) content is a change to upload.
func (st *Stage) Created(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Filled, st.s.Dirty, st.s.Modified = true, true, now
}

// Rebase records that the content now replaces generation gen of size bytes (the object moved
// to a new generation: a rename's copy).
func (st *Stage) Rebase(gen, size int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.BaseGen, st.s.BaseSize = gen, size
}

// Filled records that the base object's size bytes were copied in (under the IO lock).
func (st *Stage) Filled(size int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Filled, st.s.Size = true, size
}

// SetMtime sets the modification time the next upload stores.
func (st *Stage) SetMtime(t time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Mtime = t
}

// WriteAt writes data at off into the staging file (under the shared IO lock). Wrote records
// the change.
func (st *Stage) WriteAt(data []byte, off int64) (int, error) {
	k, err := st.f.WriteAt(data, off)
	if err != nil {
		err = fmt.Errorf("write staging file: %w", err)
	}
	return k, err
}

// Wrote records that k bytes were written at off, at now, and returns the size before. A
// caller that feeds the bytes on (a streamed upload) holds its own lock around Wrote and the
// feeding, so that both see the writes in one order.
func (st *Stage) Wrote(off int64, k int, now time.Time) (prev int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	prev = st.s.Size
	if end := off + int64(k); end > st.s.Size {
		st.s.Size = end
	}
	if k > 0 {
		st.s.Dirty, st.s.Modified = true, now
		st.s.Version++
	}
	return prev
}

// Truncate sets the staging file's size (under the exclusive IO lock); Truncated records it.
func (st *Stage) Truncate(size int64) error {
	if err := st.f.Truncate(size); err != nil {
		return fmt.Errorf("truncate staging file: %w", err)
	}
	return nil
}

// Truncated records that the content was cut or extended to size at now; it is whole then.
func (st *Stage) Truncated(size int64, now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Filled, st.s.Size, st.s.Dirty, st.s.Modified = true, size, true, now
	st.s.Version++
}

// ReadAt reads the staged content at off, up to its size.
func (st *Stage) ReadAt(dest []byte, off int64) (int, error) {
	size := st.State().Size
	if off >= size {
		return 0, nil
	}
	if int64(len(dest)) > size-off {
		dest = dest[:size-off]
	}
	k, err := st.f.ReadAt(dest, off)
	if err == io.EOF {
		err = nil
	}
	return k, err
}

// Uploaded records that the content of version, size bytes, is now generation gen: the next
// upload replaces gen, and the stage is clean unless it changed since version was read.
func (st *Stage) Uploaded(version uint64, gen, size int64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.BaseGen, st.s.BaseSize, st.s.Mtime = gen, size, time.Time{}
	if st.s.Version == version {
		st.s.Dirty = false
	}
}

// Clean marks the content uploaded (an orphan's, at unmount: nobody writes it any more).
func (st *Stage) Clean() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.s.Dirty = false
}
