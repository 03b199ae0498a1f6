package transfer

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
)

// streamFile is a staging file written in order, reporting each write to a PartWriter, as
// the mount's writes do.
type streamFile struct {
	t *testing.T
	f *os.File
	w *PartWriter
}

func newStreamFile(t *testing.T, b store.Bucket, opts Options) *streamFile {
	f, err := os.CreateTemp(t.TempDir(), "stage-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &streamFile{t: t, f: f, w: NewPartWriter(b, f, opts)}
}

// write writes data in pieces of step bytes, from offset off.
func (s *streamFile) write(data []byte, off int64, step int) bool {
	for i := 0; i < len(data); i += step {
		piece := data[i:min(i+step, len(data))]
		if _, err := s.f.WriteAt(piece, off+int64(i)); err != nil {
			s.t.Fatal(err)
		}
		if !s.w.Wrote(piece, off+int64(i)) {
			return false
		}
	}
	return true
}

// waitNoTemp waits until the bucket holds no temporary object (Abort cleans up in the
// background).
func waitNoTemp(t *testing.T, m *memstore.Bucket) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(m.Names(TempDir+"/")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("temporary objects left: %v", m.Names(TempDir+"/"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPartWriterCommit: a file written in order uploads its parts while it is written (the
// object stays invisible), and Commit composes 40 parts (a nested compose) into the object
// under its precondition, content type and metadata, and deletes every part.
func TestPartWriterCommit(t *testing.T) {
	m := memstore.New(testBucket)
	old, _ := m.Put("obj", []byte("old"), nil)
	s := newStreamFile(t, m, composeOpts())
	data := randBytes(40, 40*(256<<10)-77)
	if !s.write(data[:20*(256<<10)], 0, 100<<10) {
		t.Fatal("a write in order broke the sequence")
	}
	if !s.w.Started() {
		t.Fatal("no part started past the compose threshold")
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(m.Names(TempDir+"/")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no part was uploaded while the file was written")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, _ := m.Content("obj"); string(got) != "old" {
		t.Fatal("the object changed before Commit")
	}
	s.write(data[20*(256<<10):], 20*(256<<10), 100<<10)
	wo := store.WriteOptions{IfGen: old.Generation, ContentType: "application/x-test", Metadata: map[string]string{"k": "v"}}
	a, err := s.w.Commit(context.Background(), "obj", int64(len(data)), wo)
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != int64(len(data)) || a.CRC32C != crc32.Checksum(data, crc32c.Table) || a.ContentType != "application/x-test" || a.Metadata["k"] != "v" {
		t.Fatalf("attrs %+v", a)
	}
	if got, _ := m.Content("obj"); !bytes.Equal(got, data) {
		t.Fatal("composed content differs")
	}
	if left := m.Names(TempDir + "/"); len(left) != 0 {
		t.Fatalf("temporary objects left after Commit: %v", left)
	}
	if r := m.Requests(); r[memstore.OpCompose] != 3 { // 40 parts: 32 + 8, then the final
		t.Fatalf("composes %d, want 3", r[memstore.OpCompose])
	}
}

// TestPartWriterFailuresLeaveNothing: whatever fails (a part every attempt, an intermediate or
// the final compose, the precondition, a write out of sequence), Commit fails, the object is
// untouched and no temporary object is left.
func TestPartWriterFailuresLeaveNothing(t *testing.T) {
	boom := errors.New("injected")
	for _, tc := range []struct {
		name  string
		fault func(op memstore.Op, name string) error
		stale bool // Commit with IfGen 0 ("must not exist") although the object exists
		gap   bool // one write skips a byte
	}{
		{name: "part fails every attempt", fault: func(op memstore.Op, name string) error {
			if op == memstore.OpCommit && strings.Contains(name, "part-00003") {
				return boom
			}
			return nil
		}},
		{name: "intermediate compose fails", fault: func(op memstore.Op, name string) error {
			if op == memstore.OpCompose && strings.Contains(name, "compose-1-00001") {
				return boom
			}
			return nil
		}},
		{name: "final compose fails", fault: func(op memstore.Op, name string) error {
			if op == memstore.OpCompose && name == "obj" {
				return boom
			}
			return nil
		}},
		{name: "precondition fails", stale: true},
		{name: "write out of sequence", gap: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := memstore.New(testBucket)
			old, _ := m.Put("obj", []byte("old"), nil)
			m.SetFault(tc.fault)
			s := newStreamFile(t, m, composeOpts())
			data := randBytes(41, 40*(256<<10))
			ok := s.write(data[:1<<20], 0, 256<<10)
			if tc.gap {
				ok = s.write(data[1<<20+1:], 1<<20+1, 256<<10)
				if ok {
					t.Fatal("a write after a gap did not break the sequence")
				}
			} else {
				ok = s.write(data[1<<20:], 1<<20, 256<<10)
			}
			wo := store.WriteOptions{IfGen: old.Generation}
			if tc.stale {
				wo.IfGen = 0
			}
			_, err := s.w.Commit(context.Background(), "obj", int64(len(data)), wo)
			switch {
			case err == nil:
				t.Fatal("Commit succeeded")
			case tc.fault != nil && !errors.Is(err, boom):
				t.Fatalf("err = %v, want the injected error", err)
			case tc.stale && !errors.Is(err, store.ErrPrecondition):
				t.Fatalf("err = %v, want ErrPrecondition", err)
			}
			if got, _ := m.Content("obj"); string(got) != "old" {
				t.Fatalf("the object changed after a failed Commit: %d bytes", len(got))
			}
			if left := m.Names(TempDir + "/"); len(left) != 0 {
				t.Fatalf("temporary objects left after a failed Commit: %v", left)
			}
		})
	}
}

// TestPartWriterAbort: Abort stops the parts in flight and deletes those uploaded; a later
// Commit fails and creates nothing.
func TestPartWriterAbort(t *testing.T) {
	m := memstore.New(testBucket)
	s := newStreamFile(t, m, composeOpts())
	data := randBytes(42, 12*(256<<10))
	s.write(data, 0, 256<<10)
	s.w.Abort()
	s.w.Abort()
	waitNoTemp(t, m)
	if _, err := s.w.Commit(context.Background(), "obj", int64(len(data)), store.WriteOptions{}); err == nil {
		t.Fatal("Commit after Abort succeeded")
	}
	if names := m.Names(""); len(names) != 0 {
		t.Fatalf("objects after Abort: %v", names)
	}
}

// TestPartWriterBelowThreshold: content that never reaches the threshold starts no part, so
// the caller uploads it whole.
func TestPartWriterBelowThreshold(t *testing.T) {
	m := memstore.New(testBucket)
	s := newStreamFile(t, m, composeOpts())
	s.write(randBytes(43, 512<<10-1), 0, 64<<10)
	if s.w.Started() {
		t.Fatal("a part started below the compose threshold")
	}
	s.w.Abort()
	s.w.finish() // waits for the cleanup Abort started
	// Not even the cleanup's listing: the mount aborts a writer like this for every small
	// file it uploads (a listing per file made 4 KiB creates 7 × slower against the emulator).
	if r := m.Requests(); len(r) != 0 {
		t.Fatalf("requests below the threshold: %v, want none", r)
	}
}
