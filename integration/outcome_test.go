package integration

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestFaultWritesNoFalseFailures writes 200 small files through a default mount while 30% of
// the upload requests fail: refused before they reach the emulator (503, 500, 429) or with
// their response lost after the emulator acted (a reset before any header, so the object may
// well have landed). Each write is judged by what the bucket holds afterwards: a write whose
// close succeeded must have its object intact (fsync may have failed before: close uploads
// again), and a write whose close failed must have left no object. A failure whose object landed intact is a false failure; there
// must be none. Every failure must be EIO, never a socket errno.
func TestFaultWritesNoFalseFailures(t *testing.T) {
	const writes, writers = 200, 8
	p := faultproxy.New(15)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--upload-chunk-size", "256KiB"}})
	if err := os.Mkdir(d.path("ds", "w"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Every upload request (single-request uploads, session starts, chunks) is a POST
	// /upload/... The rules are tried in order; the probabilities make 30% in all. The last rule
	// only counts the upload requests that pass. Resets hit
	// only final requests in effect: a reset middle chunk is appended twice by the emulator
	// (EMULATOR.md), which the writer detects and refuses (an honest failure).
	up := []string{"/upload/"}
	// One write in ten meets an outage just after it landed: the response of its first
	// request is lost, and every retry is refused (503) until the client gives up. GCS holds
	// the object; the write must be reported as the success it is.
	const outageEvery = 10
	var rules []faultproxy.Rule
	for i := 0; i < writes; i += outageEvery {
		// Rule names must be unique: a rule's First counts the faults of its name.
		match := []string{"/upload/", fmt.Sprintf("outage%03d", i)}
		rules = append(rules,
			faultproxy.Rule{Name: fmt.Sprintf("outage%03d lost response", i), Method: "POST", Match: match, Action: faultproxy.Reset, First: 1},
			faultproxy.Rule{Name: fmt.Sprintf("outage%03d 503", i), Method: "POST", Match: match, Status: 503})
	}
	p.SetRules(append(rules,
		faultproxy.Rule{Name: "503", Method: "POST", Match: up, Status: 503, Prob: 0.10},
		faultproxy.Rule{Name: "500", Method: "POST", Match: up, Status: 500, Prob: 0.05 / 0.90},
		faultproxy.Rule{Name: "429", Method: "POST", Match: up, Status: 429, Prob: 0.05 / 0.85},
		faultproxy.Rule{Name: "lost response", Method: "POST", Match: up, Action: faultproxy.Reset, Prob: 0.10 / 0.80},
		faultproxy.Rule{Name: "passes", Method: "POST", Match: up, Action: faultproxy.Stall},
	)...)
	p.ResetStats()
	sizes := []int{0, 1, 1000, 100_000, 300_000} // 300,000 bytes: two resumable chunks
	type written struct {
		name          string
		data          []byte
		fsyncErr, err error // err: the write's, or else close's (the last word on the upload)
	}
	files := make([]written, writes)
	next := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("w/f%03d", i)
				if i%outageEvery == 0 {
					name = fmt.Sprintf("w/outage%03d", i)
				}
				data := randData(uint64(9000+i), sizes[i%len(sizes)])
				fsyncErr, err := writeFsyncClose(d.path("ds", name), data)
				files[i] = written{name, data, fsyncErr, err}
			}
		}()
	}
	for i := range writes {
		next <- i
	}
	close(next)
	wg.Wait()
	took := time.Since(start)
	st := p.Stats()
	p.Clear()
	outageLost, outage503 := 0, 0
	for name, n := range st.ByRule {
		switch {
		case strings.HasSuffix(name, "lost response") && strings.HasPrefix(name, "outage"):
			outageLost += n
			delete(st.ByRule, name)
		case strings.HasPrefix(name, "outage"):
			outage503 += n
			delete(st.ByRule, name)
		}
	}
	st.ByRule["outage: lost response"], st.ByRule["outage: 503"] = outageLost, outage503

	var ok, fsyncRefused, refused, falseFailures, wrong int
	for _, f := range files {
		obj, err := srv.GetObject(relBucket, "pre/"+f.name)
		intact := err == nil && bytes.Equal(obj.Content, f.data)
		switch {
		case f.err == nil && !intact:
			wrong++
			t.Errorf("%s: fsync and close succeeded, but the bucket holds %d bytes (%v): DATA LOSS", f.name, len(obj.Content), err)
		case f.fsyncErr != nil && errnoOf(f.fsyncErr) != syscall.EIO:
			wrong++
			t.Errorf("%s: fsync: %v (errno %d): a failed upload must report EIO", f.name, f.fsyncErr, errnoOf(f.fsyncErr))
		case f.err == nil && f.fsyncErr != nil:
			fsyncRefused++ // fsync's upload failed; close uploaded the file again, and it landed
			t.Logf("%s: fsync: %v; close uploaded it again", f.name, f.fsyncErr)
		case f.err == nil:
			ok++
		case errnoOf(f.err) != syscall.EIO:
			wrong++
			t.Errorf("%s: %v (errno %d): a failed upload must report EIO", f.name, f.err, errnoOf(f.err))
		case intact:
			falseFailures++
			t.Errorf("%s: told %v, yet the object landed intact: a FALSE FAILURE", f.name, f.err)
		case err == nil:
			wrong++
			t.Errorf("%s: told %v, and the bucket holds %d other bytes: PARTIAL OBJECT", f.name, f.err, len(obj.Content))
		default:
			refused++
		}
	}
	passed := st.ByRule["passes"]
	delete(st.ByRule, "passes")
	random := st.Faults - outageLost - outage503 - passed
	t.Logf("%d writes through the mount in %v; random faults on %.0f%% of the upload requests of the other writes, %d outage writes (%d of %d requests faulted: %v): %d landed intact at fsync, %d landed at close after fsync failed with EIO, %d refused with EIO and nothing landed, %d false failures, %d wrong",
		writes, took.Round(time.Millisecond), 100*float64(random)/float64(max(random+passed, 1)), writes/outageEvery, st.Faults-passed, st.Requests, st.ByRule,
		ok, fsyncRefused, refused, falseFailures, wrong)
	if st.ByRule["lost response"] == 0 || st.ByRule["outage: lost response"] != writes/outageEvery {
		t.Fatal("no response was lost: the test proves nothing")
	}
	if falseFailures != 0 {
		t.Errorf("%d false write failures, want 0", falseFailures)
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}

// writeFsyncClose creates path with data, fsyncs and closes it. fsyncErr is fsync's error;
// err is the first error of create or write, else close's: close uploads again what fsync
// failed to upload, so close has the last word on whether the file reached the bucket.
func writeFsyncClose(path string, data []byte) (fsyncErr, err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return nil, err
	}
	fsyncErr = f.Sync()
	return fsyncErr, f.Close()
}
