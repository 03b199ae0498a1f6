package integration

// Bounded latency on a stalled backend, through a default mount: metadata requests that stall
// are hedged and, when every attempt stalls, fail with EIO within a few seconds; cached data
// is served at once; a media request that stalls is hedged too.

import (
	"encoding/json"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// metadataRequests match every JSON-API request of the storage client: object stats
// (GET /storage/v1/b/B/o/NAME) and listings (GET /storage/v1/b/B/o?...). Media reads go to the
// XML path /B/NAME.
var metadataRequests = []string{"/storage/v1/"}

// The bounds a stalled backend is held to, by a mount and by a CSI volume alike: a metadata
// request stalled for stallFor fails an operation within stallBound (two hedge deadlines and
// slack for a loaded machine); cached data is served within cachedBound.
const (
	stallFor    = 20 * time.Second
	stallBound  = 5 * time.Second
	cachedBound = 100 * time.Millisecond
)

// TestStallMetadataBounded stalls every metadata request for 20 s, as measured on a
// backend in trouble: a stat of a new name and an ls of a new directory must end (with EIO)
// within 5 s, and stat and read of cached files must stay under 0.1 s. With only the first
// request of each kind stalled, hedges answer. A media request that stalls before its first
// byte is hedged as well, and one that stalls mid-body is resumed from its offset.
func TestStallMetadataBounded(t *testing.T) {
	const stall, bound = stallFor, stallBound
	p := faultproxy.New(14)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	warm := randData(1, 3<<20+5)
	cold := randData(2, 300_000)
	objs := map[string][]byte{
		"warm.bin": warm, "known.bin": cold, "cold.bin": cold, "cold2.bin": cold,
		"colddir/a": cold, "colddir2/a": cold, "hedged.bin": cold, "resumed.bin": warm,
	}
	for name, data := range objs {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	// The defaults of a mount, except a long TTL so that what was looked up stays cached for
	// the whole test (the default 60 s would do too, but leaves less margin).
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--ttl", "10m"}})

	// Before the stall: warm.bin is looked up and read whole (cached); known.bin and
	// hedged.bin are looked up (their names and attributes are cached, not their bytes).
	if err := readVerified(d.path("ds", "warm.bin"), warm); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"known.bin", "hedged.bin", "resumed.bin"} {
		if _, err := os.Stat(d.path("ds", name)); err != nil {
			t.Fatal(err)
		}
	}

	type timing struct {
		what string
		took time.Duration
		err  error
	}
	timed := func(what string, op func() error) timing {
		start := time.Now()
		err := op()
		tm := timing{what, time.Since(start), err}
		t.Logf("%-58s %8v  %v", what, tm.took.Round(time.Millisecond), err)
		return tm
	}
	wantEIO := func(tm timing) {
		t.Helper()
		if tm.took > bound {
			t.Errorf("%s took %v while metadata stalls %v: want at most %v", tm.what, tm.took, stall, bound)
		}
		if tm.err != nil && errnoOf(tm.err) != syscall.EIO {
			t.Errorf("%s: %v (errno %d), want success or EIO", tm.what, tm.err, errnoOf(tm.err))
		}
	}
	cached := func(tm timing) {
		t.Helper()
		if tm.err != nil || tm.took > cachedBound {
			t.Errorf("%s: %v after %v; cached data must be served within %v", tm.what, tm.err, tm.took, cachedBound)
		}
	}

	t.Run("every metadata request stalls", func(t *testing.T) {
		p.SetRules(faultproxy.Rule{Name: "metadata stall", Method: "GET", Match: metadataRequests, Action: faultproxy.Stall, Stall: stall})
		p.ResetStats()
		defer p.Clear()
		stat := timed("stat of a new name (cold.bin)", func() error { _, err := os.Stat(d.path("ds", "cold.bin")); return err })
		wantEIO(stat)
		if stat.err == nil {
			t.Errorf("stat of a new name succeeded although every metadata request stalls")
		}
		ls := timed("ls of a new directory (colddir)", func() error { _, err := os.ReadDir(d.path("ds", "colddir")); return err })
		wantEIO(ls)
		cached(timed("stat of a cached file (warm.bin)", func() error { _, err := os.Stat(d.path("ds", "warm.bin")); return err }))
		cached(timed("read of a cached file (warm.bin)", func() error { return readVerified(d.path("ds", "warm.bin"), warm) }))
		known := timed("read of a known, uncached file (known.bin)", func() error { return readVerified(d.path("ds", "known.bin"), cold) })
		wantEIO(known)
		if isWrong(known.err) {
			t.Errorf("%v", known.err)
		}
		if n := p.Stats().ByRule["metadata stall"]; n == 0 {
			t.Fatalf("no metadata request was stalled: the test proves nothing")
		}
	})

	t.Run("one metadata request stalls, its hedge answers", func(t *testing.T) {
		// The next metadata request stalls; its hedge, sent after the hedge deadline, answers.
		// (By now the directory ds has had enough lookups that the mount lists it instead of
		// looking names up one by one: the stalled request is that listing.)
		for _, op := range []struct {
			what string
			do   func() error
		}{
			{"stat of a new name (cold2.bin), its request stalled once", func() error {
				fi, err := os.Stat(d.path("ds", "cold2.bin"))
				if err == nil && fi.Size() != int64(len(cold)) {
					t.Errorf("stat cold2.bin: size %d, want %d", fi.Size(), len(cold))
				}
				return err
			}},
			{"ls of a new directory (colddir2), its listing stalled once", func() error {
				ents, err := os.ReadDir(d.path("ds", "colddir2"))
				if err == nil && len(ents) != 1 {
					t.Errorf("ls colddir2: %d entries, want 1", len(ents))
				}
				return err
			}},
		} {
			p.SetRules(faultproxy.Rule{Name: "metadata stall", Method: "GET", Match: metadataRequests, Action: faultproxy.Stall, Stall: stall, First: 1})
			p.ResetStats()
			tm := timed(op.what, op.do)
			if tm.err != nil || tm.took > bound {
				t.Errorf("%s: %v after %v; want the hedge's answer within %v", tm.what, tm.err, tm.took, bound)
			}
			if p.Stats().ByRule["metadata stall"] != 1 {
				t.Errorf("%s: no request stalled (%+v): the test proves nothing", op.what, p.Stats())
			}
		}
		p.Clear()
	})

	t.Run("a media request stalls", func(t *testing.T) {
		// The first media GET of hedged.bin stalls before its first byte; its hedge answers.
		p.SetRules(faultproxy.Rule{Name: "media stall", Method: "GET", Match: []string{"hedged.bin"}, Action: faultproxy.Stall, Stall: stall, First: 1})
		p.ResetStats()
		defer p.Clear()
		tm := timed("read of a known file whose first media request stalls", func() error { return readVerified(d.path("ds", "hedged.bin"), cold) })
		if tm.err != nil || tm.took > bound {
			t.Errorf("%s: %v after %v; want the hedge's bytes within %v", tm.what, tm.err, tm.took, bound)
		}
		if p.Stats().ByRule["media stall"] != 1 {
			t.Errorf("the media request was not stalled (%+v): the test proves nothing; requests: %+v", p.Stats(), srv.Requests())
		}
	})

	t.Run("a media response stops delivering bytes", func(t *testing.T) {
		// The first media response of resumed.bin pauses for 20 s after 1 MB; the read
		// resumes from there with a new request.
		p.SetRules(faultproxy.Rule{Name: "body stall", Method: "GET", Match: []string{"resumed.bin"}, Action: faultproxy.Stall, After: 1_000_000, Stall: stall, First: 1})
		p.ResetStats()
		defer p.Clear()
		tm := timed("read of a known file whose response stops after 1 MB", func() error { return readVerified(d.path("ds", "resumed.bin"), warm) })
		if tm.err != nil || tm.took > bound {
			t.Errorf("%s: %v after %v; want the resumed bytes within %v", tm.what, tm.err, tm.took, bound)
		}
		if p.Stats().ByRule["body stall"] != 1 {
			t.Errorf("the response was not stalled (%+v): the test proves nothing", p.Stats())
		}
	})

	// What the daemon counted, as plxfs status shows it.
	res := runPlxfs(t, nil, "status", "--output", "json", d.mnt)
	var st control.Status
	if err := json.Unmarshal([]byte(res.Stdout), &st); res.Code != 0 || err != nil {
		t.Fatalf("plxfs status: exit %d, %v: %s %s", res.Code, err, res.Stdout, res.Stderr)
	}
	t.Logf("plxfs status: %+v", st.Integrity)
	if st.Integrity.HedgedRequests == 0 || st.Integrity.StalledCalls == 0 {
		t.Errorf("status integrity %+v: want hedged requests and stalled calls counted", st.Integrity)
	}

	// The backend recovers: the same mount answers.
	p.Clear()
	if err := readVerified(d.path("ds", "cold.bin"), cold); err != nil {
		t.Errorf("cold.bin after the stall: %v", err)
	}
	if ents, err := os.ReadDir(d.path("ds", "colddir")); err != nil || len(ents) != 1 {
		t.Errorf("ls colddir after the stall: %v %v", ents, err)
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}
