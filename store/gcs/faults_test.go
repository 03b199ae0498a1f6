package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
	"github.com/plxfs/plxfs/store"
)

func faulty(t *testing.T, gopts Options) (*emulator.Server, *faultproxy.Proxy, store.Bucket) {
	t.Helper()
	p := faultproxy.New(1)
	em, b := newEmulated(t, emulator.Options{Handler: p.Middleware}, gopts)
	return em, p, b
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	out := make([]byte, n)
	for i := range out {
		out[i] = byte(r.Uint32())
	}
	return out
}

// TestReadsSurviveFaults checks that whole and ranged reads return exactly the stored bytes
// while the server throttles, fails, resets and truncates: the client's retries (and its
// resumption at the offset already read) must neither lose nor repeat bytes.
func TestReadsSurviveFaults(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{})
	data := randomBytes(3<<20, 9)
	gen, err := em.PutObjectGen("bkt", "big", data, "")
	if err != nil {
		t.Fatal(err)
	}
	read := func(off, n int64) []byte {
		r, err := b.NewRangeReader(ctx, "big", gen, off, n)
		if err != nil {
			t.Fatalf("open [%d,+%d): %v", off, n, err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read [%d,+%d): %v", off, n, err)
		}
		return got
	}
	// XML reads are GET /bkt/big; stats (GET /storage/v1/b/bkt/o/big) do not match "/bkt/big".
	media := []string{"/bkt/big"}
	tests := []struct {
		name  string
		rules []faultproxy.Rule
	}{
		{"503 then 429", []faultproxy.Rule{
			{Name: "503", Method: "GET", Match: media, Action: faultproxy.Status, Status: 503, First: 2},
			{Name: "429", Method: "GET", Match: media, Action: faultproxy.Status, Status: 429, First: 1},
		}},
		{"reset mid-body", []faultproxy.Rule{
			{Name: "reset", Method: "GET", Match: media, Action: faultproxy.Reset, After: 700 << 10, First: 2},
		}},
		{"truncated body", []faultproxy.Rule{
			{Name: "truncate", Method: "GET", Match: media, Action: faultproxy.Truncate, After: 1 << 20, First: 2},
		}},
		{"500 and reset", []faultproxy.Rule{
			{Name: "500", Method: "GET", Match: media, Action: faultproxy.Status, Status: 500, First: 1},
			{Name: "reset", Method: "GET", Match: media, Action: faultproxy.Reset, After: 100 << 10, Skip: 1, First: 1},
		}},
	}
	ranges := []struct{ off, n int64 }{{0, -1}, {123457, 2 << 20}, {3<<20 - 5000, -1}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, rg := range ranges {
				p.SetRules(tc.rules...)
				p.ResetStats()
				got := read(rg.off, rg.n)
				end := int64(len(data))
				if rg.n >= 0 {
					end = min(end, rg.off+rg.n)
				}
				if !bytes.Equal(got, data[rg.off:end]) {
					t.Fatalf("range [%d,+%d): %d bytes, differ from the stored bytes [%d,%d)", rg.off, rg.n, len(got), rg.off, end)
				}
				if s := p.Stats(); s.Faults == 0 && end-rg.off > 1<<20 {
					t.Fatalf("range [%d,+%d): no fault injected (%+v); the test proves nothing", rg.off, rg.n, s)
				}
			}
		})
	}
	p.Clear()
}

// TestWriteRetriesThrottledChunks checks that a multi-chunk upload whose session start and
// chunk requests are refused a few times still lands with exactly the written bytes. The
// refusals happen before the emulator sees the request (it appends re-sent chunks; see doc.go).
func TestWriteRetriesThrottledChunks(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{})
	p.SetRules(
		faultproxy.Rule{Name: "session 503", Method: "POST", Match: []string{"/upload/", "uploadType=resumable"}, Action: faultproxy.Status, Status: 503, First: 1},
		faultproxy.Rule{Name: "chunk 429", Match: []string{"upload_id="}, Action: faultproxy.Status, Status: 429, Skip: 1, First: 2},
		faultproxy.Rule{Name: "chunk 500", Match: []string{"upload_id="}, Action: faultproxy.Status, Status: 500, First: 1},
	)
	data := randomBytes(1<<20+777, 10)
	w, err := b.NewWriter(ctx, "up", store.WriteOptions{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	a, err := w.Commit()
	if err != nil {
		t.Fatalf("commit under transient faults: %v", err)
	}
	if s := p.Stats(); s.ByRule["session 503"] != 1 || s.ByRule["chunk 429"] != 2 || s.ByRule["chunk 500"] != 1 {
		t.Fatalf("faults injected %+v", s)
	}
	o, err := em.GetObject("bkt", "up")
	if err != nil || !bytes.Equal(o.Content, data) || o.Generation != a.Generation {
		t.Fatalf("stored object: %d bytes, gen %d (commit gen %d), err %v", len(o.Content), o.Generation, a.Generation, err)
	}
}

// TestWriteFailingUploadsLeaveNothing checks that an upload whose requests keep failing ends
// with an error from Commit and no object, for a single-request and a multi-chunk upload.
func TestWriteFailingUploadsLeaveNothing(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{MaxAttempts: 3, RetryDeadline: 2 * time.Second})
	for _, tc := range []struct {
		name string
		size int
		rule faultproxy.Rule
	}{
		{"single request", 1000, faultproxy.Rule{Match: []string{"/upload/"}, Action: faultproxy.Status, Status: 503}},
		{"third chunk", 1 << 20, faultproxy.Rule{Match: []string{"upload_id="}, Action: faultproxy.Status, Status: 503, Skip: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.SetRules(tc.rule)
			p.ResetStats()
			w, err := b.NewWriter(ctx, "doomed", store.WriteOptions{ChunkSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			_, werr := w.Write(randomBytes(tc.size, 11))
			_, err = w.Commit()
			if err == nil {
				t.Fatalf("commit succeeded although every upload request failed (write err %v)", werr)
			}
			if errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrPrecondition) {
				t.Fatalf("commit error %v must be an I/O error, not ErrNotExist/ErrPrecondition", err)
			}
			if p.Stats().Faults < 2 {
				t.Fatalf("faults %+v: the client did not retry", p.Stats())
			}
			p.Clear()
			if _, err := b.Stat(ctx, "doomed"); !errors.Is(err, store.ErrNotExist) {
				t.Fatalf("object after failed upload: %v", err)
			}
			if names, _ := em.ObjectNames("bkt", ""); len(names) != 0 {
				t.Fatalf("objects left: %q", names)
			}
		})
	}
}

// TestWriteLostChunkResponseIsCaught covers the emulator quirk that a chunk re-sent after its
// response was lost is appended twice. GCS would store the right bytes; here the stored object
// is longer than what was written, and Commit must notice, delete it and fail rather than
// leave a wrong object.
func TestWriteLostChunkResponseIsCaught(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{})
	p.SetRules(faultproxy.Rule{Name: "lost", Method: "POST", Match: []string{"upload_id="}, Action: faultproxy.Reset, After: 0, Skip: 1, First: 1})
	w, err := b.NewWriter(ctx, "dup", store.WriteOptions{ChunkSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	w.Write(randomBytes(1<<20, 12))
	_, err = w.Commit()
	if p.Stats().ByRule["lost"] != 1 {
		t.Fatalf("fault not injected: %+v", p.Stats())
	}
	if err == nil {
		t.Fatal("commit of an upload with a duplicated chunk succeeded")
	}
	t.Logf("commit error (expected): %v", err)
	if names, _ := em.ObjectNames("bkt", ""); len(names) != 0 {
		t.Fatalf("objects left: %q", names)
	}
}

// TestPermissionDenied: a 403 (the credentials may not do this) or a 401 (the credentials were
// refused) is not retried and wraps store.ErrPermission, on every kind of call, and a refused
// upload leaves no object.
func TestPermissionDenied(t *testing.T) {
	ctx := context.Background()
	em, p, b := faulty(t, Options{MaxAttempts: 3})
	if _, err := em.PutObjectGen("bkt", "obj", []byte("data"), ""); err != nil {
		t.Fatal(err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"stat", func() error { _, err := b.Stat(ctx, "obj"); return err }},
		{"list", func() error { _, err := b.List(ctx, store.ListOptions{}); return err }},
		{"read", func() error {
			r, err := b.NewRangeReader(ctx, "obj", 0, 0, -1)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			return err
		}},
		{"write", func() error {
			w, err := b.NewWriter(ctx, "new", store.WriteOptions{})
			if err != nil {
				return err
			}
			w.Write([]byte("x"))
			_, err = w.Commit()
			return err
		}},
		{"delete", func() error { return b.Delete(ctx, "obj", 0) }},
	}
	for _, code := range []int{403, 401} {
		p.SetRules(faultproxy.Rule{Name: "denied", Action: faultproxy.Status, Status: code})
		for _, c := range calls {
			err := c.call()
			if !errors.Is(err, store.ErrPermission) || errors.Is(err, store.ErrNotExist) {
				t.Errorf("%d on %s: %v; want an error wrapping ErrPermission", code, c.name, err)
			}
		}
		p.Clear()
	}
	if names, _ := em.ObjectNames("bkt", ""); len(names) != 1 || names[0] != "obj" {
		t.Errorf("objects after refused calls: %v", names)
	}
}
