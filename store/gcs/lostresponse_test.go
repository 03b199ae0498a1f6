package gcs

import (
	"bytes"
	"context"
	"errors"
	"hash/crc32"
	"testing"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/internal/faultproxy"
	"github.com/plxfs/plxfs/store"
)

// A request whose response is lost after the server acted (a reset before any header) is
// retried by the client. For a write with a "does not exist" or generation precondition the
// retry then meets the write's own result: GCS answers 412 (the object now exists), or 404 for
// a resumable session that was finalised. That is the write succeeding, not a conflict: the
// writer must check the live object and report success when it holds exactly the bytes
// written, and must report a real conflict (or an I/O error) otherwise.

func TestWriteLostResponseIsOwnSuccess(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		size int
		rule faultproxy.Rule
	}{
		{"single request", 1000, faultproxy.Rule{Name: "lost", Method: "POST", Match: []string{"/upload/", "uploadType=multipart"}, Action: faultproxy.Reset, First: 1}},
		{"empty object", 0, faultproxy.Rule{Name: "lost", Method: "POST", Match: []string{"/upload/", "uploadType=multipart"}, Action: faultproxy.Reset, First: 1}},
		// 600 KiB in 256 KiB chunks: the third request finalises the upload.
		{"final chunk of a resumable upload", 600 << 10, faultproxy.Rule{Name: "lost", Match: []string{"upload_id="}, Action: faultproxy.Reset, Skip: 2, First: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			em, p, b := faulty(t, Options{})
			data := randomBytes(tc.size, 21)
			p.SetRules(tc.rule)
			w, err := b.NewWriter(ctx, "obj", store.WriteOptions{ChunkSize: 256 << 10, CRC32C: crc32.Checksum(data, crc32c.Table), HasCRC32C: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			a, err := w.Commit()
			if p.Stats().ByRule["lost"] != 1 {
				t.Fatalf("fault not injected: %+v", p.Stats())
			}
			obj, gerr := em.GetObject("bkt", "obj")
			if gerr != nil || !bytes.Equal(obj.Content, data) {
				// The emulator appended a re-sent chunk (see doc.go): then an error is right.
				t.Logf("the emulator holds %d bytes (%v); commit: %v", len(obj.Content), gerr, err)
				if err == nil {
					t.Fatal("commit succeeded but the object does not hold the bytes written")
				}
				return
			}
			if err != nil {
				t.Fatalf("commit after a lost response of a write that landed: %v (want success: the object holds exactly the bytes written)", err)
			}
			if a.Size != int64(tc.size) || a.Generation != obj.Generation {
				t.Fatalf("attrs %+v, object generation %d", a, obj.Generation)
			}
		})
	}
}

func TestWriteRetriedConflictStaysAConflict(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{})
	if err := em.PutObject("bkt", "obj", []byte("someone else's bytes"), ""); err != nil {
		t.Fatal(err)
	}
	// A transient failure, then the 412 of a real conflict: the object holds other bytes.
	p.SetRules(faultproxy.Rule{Name: "503", Method: "POST", Match: []string{"/upload/"}, Status: 503, First: 1})
	w, err := b.NewWriter(ctx, "obj", store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("my bytes"))
	_, err = w.Commit()
	if !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("commit over another writer's object after a retry: %v, want ErrPrecondition", err)
	}
	if obj, _ := em.GetObject("bkt", "obj"); string(obj.Content) != "someone else's bytes" {
		t.Fatalf("the other object was replaced: %q", obj.Content)
	}
}

func TestComposeLostResponseIsOwnSuccess(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{})
	a, bb := randomBytes(300_000, 1), randomBytes(200_000, 2)
	for name, d := range map[string][]byte{"a": a, "b": bb} {
		if err := em.PutObject("bkt", name, d, ""); err != nil {
			t.Fatal(err)
		}
	}
	whole := append(append([]byte{}, a...), bb...)
	crc := crc32.Checksum(whole, crc32c.Table)
	// The emulator ignores compose preconditions; the proxy answers the retry as GCS would.
	p.SetRules(
		faultproxy.Rule{Name: "lost", Match: []string{"/compose"}, Action: faultproxy.Reset, First: 1},
		faultproxy.Rule{Name: "412", Match: []string{"/compose"}, Status: 412},
	)
	got, err := b.Compose(ctx, "dst", []string{"a", "b"}, store.WriteOptions{CRC32C: crc, HasCRC32C: true})
	if st := p.Stats(); st.ByRule["lost"] != 1 || st.ByRule["412"] != 1 {
		t.Fatalf("faults %+v", st)
	}
	if err != nil {
		t.Fatalf("compose whose response was lost and whose retry met its own result: %v", err)
	}
	obj, _ := em.GetObject("bkt", "dst")
	if !bytes.Equal(obj.Content, whole) || got.Generation != obj.Generation || got.Size != int64(len(whole)) {
		t.Fatalf("compose result %+v, object %d bytes gen %d", got, len(obj.Content), obj.Generation)
	}

	// The same sequence when the destination holds other bytes is a conflict.
	if err := em.PutObject("bkt", "dst2", []byte("other"), ""); err != nil {
		t.Fatal(err)
	}
	p.SetRules(
		faultproxy.Rule{Name: "503", Match: []string{"/compose"}, Status: 503, First: 1},
		faultproxy.Rule{Name: "412", Match: []string{"/compose"}, Status: 412},
	)
	if _, err := b.Compose(ctx, "dst2", []string{"a", "b"}, store.WriteOptions{CRC32C: crc, HasCRC32C: true}); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("compose onto another writer's object after a retry: %v, want ErrPrecondition", err)
	}
}
