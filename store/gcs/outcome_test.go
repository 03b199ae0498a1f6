package gcs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"sync"
	"testing"

	"google.golang.org/api/googleapi"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
	"github.com/plxfs/plxfs/store"
)

// An upload's outcome is what GCS holds, not what the last request said: these tests judge
// every write by the bucket's contents afterwards.

func TestOutcomeUnknown(t *testing.T) {
	gerr := func(code int) error { return fmt.Errorf("wrapped: %w", &googleapi.Error{Code: code}) }
	for _, tc := range []struct {
		name    string
		err     error
		retried bool
		want    bool
	}{
		{"connection reset", errors.New("read tcp: connection reset by peer"), false, true},
		{"timeout", context.DeadlineExceeded, false, true},
		{"503", gerr(503), false, true},
		{"500", gerr(500), false, true},
		{"429", gerr(429), false, true},
		{"408", gerr(408), false, true},
		{"412 on the only attempt: a real conflict", gerr(412), false, false},
		{"400 on the only attempt", gerr(400), false, false},
		{"403 on the only attempt", gerr(403), false, false},
		{"412 after a retry", gerr(412), true, true},
		{"404 after a retry", gerr(404), true, true},
		{"400 after a retry", gerr(400), true, true},
	} {
		if got := outcomeUnknown(tc.err, tc.retried); got != tc.want {
			t.Errorf("%s: outcomeUnknown = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestWriteLostResponseWithoutRetryLanded: the only attempt of an upload reaches GCS and its
// response is lost (a reset before any header). The client gives up (one attempt allowed),
// but the object landed intact, so Commit reports success with its attributes.
func TestWriteLostResponseWithoutRetryLanded(t *testing.T) {
	ctx := context.Background()
	var counters store.Counters
	p := faultproxy.New(1)
	em, b := newEmulated(t, emulator.Options{Handler: p.Middleware}, Options{MaxAttempts: 1, Counters: &counters})
	for _, tc := range []struct {
		name string
		size int
		rule faultproxy.Rule
	}{
		{"single request", 1000, faultproxy.Rule{Name: "lost", Method: "POST", Match: []string{"/upload/"}, Action: faultproxy.Reset}},
		{"final chunk", 300 << 10, faultproxy.Rule{Name: "lost", Match: []string{"upload_id="}, Action: faultproxy.Reset, Skip: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p.SetRules(tc.rule)
			p.ResetStats()
			before := counters.Snapshot()
			data := randomBytes(tc.size, 31)
			name := "lost-" + fmt.Sprint(tc.size)
			w, err := b.NewWriter(ctx, name, store.WriteOptions{ChunkSize: 256 << 10})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			a, err := w.Commit()
			p.Clear()
			if p.Stats().ByRule["lost"] != 1 {
				t.Fatalf("fault not injected: %+v", p.Stats())
			}
			obj, gerr := em.GetObject("bkt", name)
			if gerr != nil || !bytes.Equal(obj.Content, data) {
				t.Fatalf("the emulator does not hold the bytes (%v); the test proves nothing", gerr)
			}
			if err != nil {
				t.Fatalf("commit of a write that landed intact: %v (a false failure)", err)
			}
			if a.Generation != obj.Generation || a.Size != int64(len(data)) {
				t.Fatalf("attrs %+v, object gen %d", a, obj.Generation)
			}
			if got := counters.Snapshot(); got.OutcomeLanded != before.OutcomeLanded+1 {
				t.Fatalf("counters %+v, before %+v: the check was not counted", got, before)
			}
		})
	}
}

// TestWriteUnknownOutcomeNotLanded: an upload refused with 503 on every attempt never reached
// the emulator; the check finds no object, and Commit fails with an I/O error.
func TestWriteUnknownOutcomeNotLanded(t *testing.T) {
	ctx := context.Background()
	var counters store.Counters
	p := faultproxy.New(1)
	em, b := newEmulated(t, emulator.Options{Handler: p.Middleware}, Options{MaxAttempts: 2, Counters: &counters})
	p.SetRules(faultproxy.Rule{Method: "POST", Match: []string{"/upload/"}, Status: 503})
	w, err := b.NewWriter(ctx, "never", store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("bytes"))
	_, err = w.Commit()
	p.Clear()
	if err == nil || errors.Is(err, store.ErrNotExist) || errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("commit refused with 503 on every attempt: %v, want an I/O error", err)
	}
	if names, _ := em.ObjectNames("bkt", ""); len(names) != 0 {
		t.Fatalf("objects: %q", names)
	}
	if s := counters.Snapshot(); s.OutcomeNotLanded != 1 || s.OutcomeLanded != 0 {
		t.Fatalf("counters %+v, want one check that found nothing", s)
	}
}

// TestUploadsUnderThirtyPercentFaults writes 200 small objects (new ones and overwrites, one
// request or two chunks each) while 30% of the upload requests fail: refused before reaching
// the emulator (503, 500, 429) or lost after the emulator acted (a reset before any response
// header). Each write is judged by what the bucket holds afterwards: a reported success must
// have its object intact, and a reported failure must have left no new object: a failure
// whose object landed is a false failure, and there must be none.
func TestUploadsUnderThirtyPercentFaults(t *testing.T) {
	ctx := context.Background()
	var counters store.Counters
	p := faultproxy.New(30)
	// Small budgets keep the test short; the outcome check must not depend on retries.
	em, b := newEmulated(t, emulator.Options{Handler: p.Middleware}, Options{MaxAttempts: 3, Counters: &counters})
	const writes, workers = 200, 8
	olds := map[string][]byte{}
	gens := map[string]int64{}
	for i := range writes / 4 { // every fourth write is an overwrite
		name := fmt.Sprintf("old%03d", i)
		olds[name] = randomBytes(500+i, uint64(7000+i))
		g, err := em.PutObjectGen("bkt", name, olds[name], "")
		if err != nil {
			t.Fatal(err)
		}
		gens[name] = g
	}
	// Every upload request of the Go client (single-request uploads, session starts, chunks)
	// is a POST.
	var rules []faultproxy.Rule
	for _, m := range []string{"POST"} {
		rules = append(rules,
			faultproxy.Rule{Name: m + " 503", Method: m, Match: []string{"/upload/"}, Status: 503, Prob: 0.10},
			faultproxy.Rule{Name: m + " 500", Method: m, Match: []string{"/upload/"}, Status: 500, Prob: 0.05 / 0.9},
			faultproxy.Rule{Name: m + " 429", Method: m, Match: []string{"/upload/"}, Status: 429, Prob: 0.05 / 0.85},
			// A response lost after the emulator acted: the write may have landed. Only on
			// requests that finish an upload (the emulator appends a re-sent middle chunk,
			// which GCS does not; see doc.go).
			faultproxy.Rule{Name: m + " lost", Method: m, Match: []string{"/upload/"}, Action: faultproxy.Reset, Prob: 0.13 / 0.8},
		)
	}

	type result struct {
		name   string
		data   []byte
		old    []byte
		ifGen  int64
		attrs  store.Attrs
		err    error
		chunks bool
	}
	results := make([]result, writes)
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := result{name: fmt.Sprintf("new%03d", i)}
				size := []int{0, 1, 1000, 40_000}[i%4]
				if i%4 == 3 {
					r.name = fmt.Sprintf("old%03d", i/4)
					r.old, r.ifGen = olds[r.name], gens[r.name]
				}
				if i%10 == 1 {
					size, r.chunks = 300<<10, true // a resumable upload of two chunks
				}
				r.data = randomBytes(size, uint64(i))
				opts := store.WriteOptions{IfGen: r.ifGen, ChunkSize: 256 << 10}
				if i%2 == 0 {
					opts.CRC32C, opts.HasCRC32C = crc32.Checksum(r.data, crc32c.Table), true
				}
				w, err := b.NewWriter(ctx, r.name, opts)
				if err == nil {
					_, err = w.Write(r.data)
					if err != nil {
						w.Abort()
					} else {
						r.attrs, err = w.Commit()
					}
				}
				r.err = err
				results[i] = r
			}
		}()
	}
	p.SetRules(rules...)
	for i := range writes {
		next <- i
	}
	close(next)
	wg.Wait()
	st := p.Stats()
	p.Clear()

	var ok, failed, falseFailures, bad int
	for _, r := range results {
		obj, gerr := em.GetObject("bkt", r.name)
		landed := gerr == nil && bytes.Equal(obj.Content, r.data) && obj.Generation != r.ifGen
		switch {
		case r.err == nil && !landed:
			bad++
			t.Errorf("%s: commit succeeded (gen %d) but the bucket holds %d bytes gen %d (%v): DATA LOSS",
				r.name, r.attrs.Generation, len(obj.Content), obj.Generation, gerr)
		case r.err == nil && r.attrs.Generation != obj.Generation:
			bad++
			t.Errorf("%s: commit returned gen %d, the bucket holds gen %d", r.name, r.attrs.Generation, obj.Generation)
		case r.err == nil:
			ok++
		case landed:
			falseFailures++
			t.Errorf("%s: commit failed (%v) although the object landed intact: a FALSE FAILURE", r.name, r.err)
		default:
			failed++
			if r.old != nil && (gerr != nil || !bytes.Equal(obj.Content, r.old)) {
				// The emulator's duplicated chunk (see doc.go) made Commit delete its own wrong
				// generation, which GCS would not have produced; a real loss otherwise.
				if !r.chunks {
					bad++
					t.Errorf("%s: a failed overwrite (%v) left %d bytes (%v) instead of the old object", r.name, r.err, len(obj.Content), gerr)
				}
			}
			if r.old == nil && gerr == nil {
				if r.chunks && len(obj.Content) > len(r.data) && bytes.Equal(obj.Content[:len(r.data)/2], r.data[:len(r.data)/2]) {
					// The emulator appended a re-sent chunk (see doc.go) and finalised the
					// longer object: GCS would not have produced it, and plxfs cannot tell it
					// from another writer's (its response was lost), so it is left alone.
					t.Logf("%s: the emulator's duplicated chunk made a longer object (%d bytes for %d written); the write was reported failed", r.name, len(obj.Content), len(r.data))
				} else {
					bad++
					t.Errorf("%s: a failed write (%v) left an object of %d bytes", r.name, r.err, len(obj.Content))
				}
			}
			t.Logf("%s: reported failure, nothing landed: %v", r.name, r.err)
		}
	}
	cs := counters.Snapshot()
	t.Logf("%d writes under %.0f%% upload faults (%d of %d requests faulted, %v): %d succeeded intact, %d failed with nothing landed, %d false failures, %d wrong; outcome checks: %d landed, %d not landed",
		writes, 100*float64(st.Faults)/float64(max(st.Requests, 1)), st.Faults, st.Requests, st.ByRule,
		ok, failed, falseFailures, bad, cs.OutcomeLanded, cs.OutcomeNotLanded)
	if falseFailures != 0 {
		t.Fatalf("%d false write failures, want 0", falseFailures)
	}
	if st.ByRule["POST lost"] == 0 || cs.OutcomeLanded == 0 {
		t.Fatalf("no lost response was injected or resolved (%v, %+v): the test proves nothing", st.ByRule, cs)
	}
}

// TestComposeUnknownOutcomeLanded: the only attempt of a compose loses its response after the
// emulator composed; the check finds the declared CRC32C and reports success.
func TestComposeUnknownOutcomeLanded(t *testing.T) {
	ctx := context.Background()
	var counters store.Counters
	p := faultproxy.New(1)
	em, b := newEmulated(t, emulator.Options{Handler: p.Middleware}, Options{MaxAttempts: 1, Counters: &counters})
	x, y := randomBytes(1000, 1), randomBytes(2000, 2)
	em.PutObject("bkt", "x", x, "")
	em.PutObject("bkt", "y", y, "")
	whole := append(append([]byte{}, x...), y...)
	p.SetRules(faultproxy.Rule{Name: "lost", Match: []string{"/compose"}, Action: faultproxy.Reset, First: 1})
	a, err := b.Compose(ctx, "xy", []string{"x", "y"}, store.WriteOptions{CRC32C: crc32.Checksum(whole, crc32c.Table), HasCRC32C: true})
	if p.Stats().ByRule["lost"] != 1 {
		t.Fatalf("fault not injected: %+v", p.Stats())
	}
	if err != nil {
		t.Fatalf("compose that landed: %v", err)
	}
	obj, _ := em.GetObject("bkt", "xy")
	if !bytes.Equal(obj.Content, whole) || a.Generation != obj.Generation || counters.Snapshot().OutcomeLanded != 1 {
		t.Fatalf("compose %+v, object gen %d, counters %+v", a, obj.Generation, counters.Snapshot())
	}
}
