package faultproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var body = bytes.Repeat([]byte("0123456789"), 10000) // 100,000 bytes

// backend serves body with a Content-Length, like the emulator's downloads, and counts calls.
func backend(t *testing.T, p *Proxy) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		for off := 0; off < len(body); off += 4096 { // several writes, as io.Copy does
			if _, err := w.Write(body[off:min(off+4096, len(body))]); err != nil {
				return
			}
		}
	})
	srv := httptest.NewServer(p.Middleware(h))
	t.Cleanup(srv.Close)
	return srv, &calls
}

type result struct {
	code int
	body []byte
	err  error // from Do or from reading the body
}

func do(ctx context.Context, method, url string) result {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return result{err: err}
	}
	// A fresh transport per request: a cut connection must not poison the next request.
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return result{code: resp.StatusCode, body: b, err: err}
}

func TestStatusFirstN(t *testing.T) {
	p := New(1)
	srv, calls := backend(t, p)
	p.SetRules(Rule{Name: "throttle", Match: []string{"alt=media"}, Action: Status, Status: 429, First: 2})
	for i, want := range []int{429, 429, 200, 200} {
		r := do(context.Background(), "GET", srv.URL+"/b/o?alt=media")
		if r.err != nil || r.code != want {
			t.Fatalf("request %d: %d %v; want %d", i, r.code, r.err, want)
		}
		if want == 429 && (!json.Valid(r.body) || !bytes.Contains(r.body, []byte(`"code":429`))) {
			t.Fatalf("error body %q", r.body)
		}
	}
	if r := do(context.Background(), "GET", srv.URL+"/b/o"); r.code != 200 {
		t.Fatalf("non-matching request: %d", r.code)
	}
	s := p.Stats()
	if s.Requests != 5 || s.Faults != 2 || s.ByRule["throttle"] != 2 {
		t.Fatalf("stats %+v", s)
	}
	if calls.Load() != 3 {
		t.Fatalf("backend saw %d requests; refused ones must not reach it", calls.Load())
	}
}

func TestMethodSkipAndDefaults(t *testing.T) {
	p := New(1)
	srv, _ := backend(t, p)
	p.SetRules(Rule{Method: "PUT", Match: []string{"/upload/", "upload_id="}, Skip: 1, First: 1})
	codes := []int{}
	for _, m := range []string{"GET", "PUT", "PUT", "PUT"} {
		codes = append(codes, do(context.Background(), m, srv.URL+"/upload/resumable/x?upload_id=1").code)
	}
	if fmt.Sprint(codes) != "[200 200 503 200]" {
		t.Fatalf("codes %v; want the second PUT refused with the default 503", codes)
	}
	if s := p.Stats(); s.ByRule["status#0"] != 1 {
		t.Fatalf("default rule name: %+v", s.ByRule)
	}
}

func TestProbabilityIsSeeded(t *testing.T) {
	run := func() (string, int) {
		p := New(42)
		srv, _ := backend(t, p)
		p.SetRules(Rule{Name: "half", Action: Status, Status: 500, Prob: 0.5})
		var pattern []byte
		for range 40 {
			if do(context.Background(), "HEAD", srv.URL+"/x").code == 500 {
				pattern = append(pattern, 'x')
			} else {
				pattern = append(pattern, '.')
			}
		}
		return string(pattern), p.Stats().Faults
	}
	a, na := run()
	b, nb := run()
	if a != b || na != nb {
		t.Fatalf("same seed, different faults:\n%s\n%s", a, b)
	}
	if na == 0 || na == 40 {
		t.Fatalf("probability 0.5 gave %d faults of 40: %s", na, a)
	}
}

func TestResetMidBody(t *testing.T) {
	p := New(1)
	srv, _ := backend(t, p)
	p.SetRules(Rule{Name: "rst", Action: Reset, After: 10000, First: 1})
	r := do(context.Background(), "GET", srv.URL+"/o")
	if r.err == nil {
		t.Fatalf("reset response read without error (%d bytes)", len(r.body))
	}
	if r.code != 200 || len(r.body) > 10000 || !bytes.Equal(r.body, body[:len(r.body)]) {
		t.Fatalf("code %d, %d bytes before the reset; want at most 10000 bytes of the real body", r.code, len(r.body))
	}
	if r := do(context.Background(), "GET", srv.URL+"/o"); r.err != nil || !bytes.Equal(r.body, body) {
		t.Fatalf("after the rule is spent: %v, %d bytes", r.err, len(r.body))
	}
	if s := p.Stats(); s.Faults != 1 || s.ByRule["rst"] != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestResetBeforeResponse(t *testing.T) {
	p := New(1)
	srv, calls := backend(t, p)
	p.SetRules(Rule{Name: "lost", Method: "POST", Action: Reset, After: 0})
	r := do(context.Background(), "POST", srv.URL+"/upload")
	if r.err == nil {
		t.Fatalf("lost response: got %d and no error", r.code)
	}
	if calls.Load() != 1 {
		t.Fatalf("backend calls %d; the request must reach it before the response is lost", calls.Load())
	}
	if p.Stats().Faults != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
}

func TestTruncate(t *testing.T) {
	p := New(1)
	srv, _ := backend(t, p)
	p.SetRules(Rule{Action: Truncate, After: 12345})
	r := do(context.Background(), "GET", srv.URL+"/o")
	if !errors.Is(r.err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated body: err %v; want io.ErrUnexpectedEOF", r.err)
	}
	if !bytes.Equal(r.body, body[:12345]) {
		t.Fatalf("got %d bytes; want exactly the first 12345", len(r.body))
	}
}

func TestStallHonoursContext(t *testing.T) {
	p := New(1)
	srv, calls := backend(t, p)
	p.SetRules(Rule{Name: "stall", Action: Stall, Stall: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	r := do(ctx, "GET", srv.URL+"/o")
	if !errors.Is(r.err, context.DeadlineExceeded) {
		t.Fatalf("stalled request: %v", r.err)
	}
	// The stalled handler must return once the client is gone; httptest's Close waits for
	// handlers, so a handler stuck for an hour would hang here.
	srv.Close()
	if calls.Load() != 0 {
		t.Fatal("a request dropped during its stall reached the backend")
	}

	p2 := New(1)
	srv2, calls2 := backend(t, p2)
	p2.SetRules(Rule{Action: Stall, Stall: time.Millisecond})
	if r := do(context.Background(), "GET", srv2.URL+"/o"); r.err != nil || !bytes.Equal(r.body, body) {
		t.Fatalf("short stall: %v", r.err)
	}
	if calls2.Load() != 1 {
		t.Fatal("a short stall must forward the request")
	}
}

func TestReplaceAndClearConcurrently(t *testing.T) {
	p := New(7)
	srv, _ := backend(t, p)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				p.SetRules(Rule{Action: Status, Prob: 0.3}, Rule{Action: Truncate, After: 10, Prob: 0.3})
			} else {
				p.Clear()
			}
			p.Stats()
		}
	})
	var clients sync.WaitGroup
	for range 4 {
		clients.Go(func() {
			for range 10 {
				do(context.Background(), "GET", srv.URL+"/o")
			}
		})
	}
	clients.Wait()
	close(stop)
	wg.Wait()
	p.Clear()
	if r := do(context.Background(), "GET", srv.URL+"/o"); r.err != nil || !bytes.Equal(r.body, body) {
		t.Fatalf("after Clear: %v", r.err)
	}
	if s := p.Stats(); s.Requests != 41 {
		t.Fatalf("requests %d, want 41", s.Requests)
	}
	p.ResetStats()
	if s := p.Stats(); s.Requests != 0 || s.Faults != 0 || len(s.ByRule) != 0 {
		t.Fatalf("after ResetStats %+v", s)
	}
}

// diffs returns the offsets where got differs from want (same length).
func diffs(got, want []byte) []int {
	var at []int
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			at = append(at, i)
		}
	}
	return at
}

func TestFlipChosenOffset(t *testing.T) {
	p := New(1)
	srv, calls := backend(t, p)
	// 4096 is the first byte of the backend's second write; 0 and the last byte are edges.
	for _, at := range []int64{0, 4095, 4096, 12345, int64(len(body)) - 1} {
		p.SetRules(Rule{Name: "flip", Method: "GET", Action: Flip, After: at, First: 1})
		p.ResetStats()
		r := do(context.Background(), "GET", srv.URL+"/o")
		if r.err != nil || r.code != 200 || len(r.body) != len(body) {
			t.Fatalf("flip at %d: %d, %d bytes, %v; want a whole 200 response", at, r.code, len(r.body), r.err)
		}
		if d := diffs(r.body, body); len(d) != 1 || int64(d[0]) != at || r.body[at] != body[at]^0xff {
			t.Fatalf("flip at %d: bytes differ at %v", at, d)
		}
		if s := p.Stats(); s.ByRule["flip"] != 1 {
			t.Fatalf("flip at %d: stats %+v", at, s)
		}
	}
	// Spent (First 1): the next response is intact, and the handler's buffer was never
	// modified (the backend serves the same slice every time).
	if r := do(context.Background(), "GET", srv.URL+"/o"); !bytes.Equal(r.body, body) {
		t.Fatalf("after the rule is spent: differs at %v", diffs(r.body, body))
	}
	if calls.Load() != 6 {
		t.Fatalf("backend calls %d; a flip must forward the request", calls.Load())
	}
	// Past the end of the body: nothing is flipped and nothing counted.
	p.SetRules(Rule{Name: "flip", Action: Flip, After: int64(len(body))})
	p.ResetStats()
	if r := do(context.Background(), "GET", srv.URL+"/o"); !bytes.Equal(r.body, body) || p.Stats().Faults != 0 {
		t.Fatalf("flip past the end: differs at %v, stats %+v", diffs(r.body, body), p.Stats())
	}
}

func TestFlipRandomOffsetIsSeeded(t *testing.T) {
	run := func() []int {
		p := New(99)
		srv, _ := backend(t, p)
		p.SetRules(Rule{Name: "flip", Action: Flip, After: -1})
		var at []int
		for range 5 {
			r := do(context.Background(), "GET", srv.URL+"/o")
			d := diffs(r.body, body)
			if r.err != nil || len(r.body) != len(body) || len(d) != 1 {
				t.Fatalf("random flip: %d bytes, %v, differences at %v; want exactly one", len(r.body), r.err, d)
			}
			at = append(at, d[0])
		}
		if p.Stats().ByRule["flip"] != 5 {
			t.Fatalf("stats %+v", p.Stats())
		}
		return at
	}
	a, b := run(), run()
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("same seed, different offsets: %v, %v", a, b)
	}
	spread := map[int]bool{}
	for _, o := range a {
		spread[o] = true
	}
	if len(spread) < 2 {
		t.Fatalf("random offsets %v are not random", a)
	}
	t.Logf("random flips at %v of %d bytes", a, len(body))
}

func TestStallMidBody(t *testing.T) {
	p := New(1)
	srv, _ := backend(t, p)
	p.SetRules(Rule{Name: "pause", Action: Stall, After: 5000, Stall: 150 * time.Millisecond, First: 1})
	start := time.Now()
	r := do(context.Background(), "GET", srv.URL+"/o")
	if took := time.Since(start); r.err != nil || !bytes.Equal(r.body, body) || took < 150*time.Millisecond {
		t.Fatalf("paused response: %v, %d bytes, after %v; want the whole body after the pause", r.err, len(r.body), took)
	}
	if p.Stats().ByRule["pause"] != 1 {
		t.Fatalf("stats %+v", p.Stats())
	}
	// A client that gives up during the pause gets the bytes before it, and the handler ends.
	p.SetRules(Rule{Name: "pause", Action: Stall, After: 5000, Stall: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/o", nil)
	tr := &http.Transport{DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5000)
	if _, err := io.ReadFull(resp.Body, got); err != nil || !bytes.Equal(got, body[:5000]) {
		t.Fatalf("bytes before the pause: %v", err)
	}
	cancel()
	resp.Body.Close()
	srv.Close() // waits for the handler: it must not sleep for an hour
}
