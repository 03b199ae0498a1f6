package integration

// Fault injection through a real mount: reads and writes while about 10% of the requests
// fail (503/500/429 answers, connections reset before or in the middle of a body, bodies cut
// short), recovery once the faults stop, and a stalled backend.

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// tenPercent are rules that, tried in order, fault about 10% of the requests they match.
func tenPercent(method string, match ...string) []faultproxy.Rule {
	r := func(name string, a faultproxy.Action, status int, after int64, prob float64) faultproxy.Rule {
		return faultproxy.Rule{Name: name, Method: method, Match: match, Action: a, Status: status, After: after, Prob: prob}
	}
	return []faultproxy.Rule{
		r("503", faultproxy.Status, 503, 0, 0.03),
		r("500", faultproxy.Status, 500, 0, 0.01),
		r("429", faultproxy.Status, 429, 0, 0.01),
		r("reset before headers", faultproxy.Reset, 0, 0, 0.015),
		r("reset mid-body", faultproxy.Reset, 0, 40_000, 0.02),
		r("truncated body", faultproxy.Truncate, 0, 30_000, 0.02),
	}
}

// faultObjects are the objects of TestFaultReads: edge sizes around the 1 MiB chunk, and
// multi-chunk objects.
func faultObjects() map[string][]byte {
	const mib = 1 << 20
	objs := map[string][]byte{}
	for i, n := range []int{0, 1, mib - 1, mib, mib + 1} {
		objs[fmt.Sprintf("r/edge%d", i)] = randData(uint64(100+i), n)
	}
	for i := range 14 {
		objs[fmt.Sprintf("r/big%02d", i)] = randData(uint64(200+i), 3*mib+i*4099)
	}
	return objs
}

// TestFaultReads reads through a mount while ~10% of the GETs (object bytes, metadata and
// listings alike) fail: every read returns exactly the object's bytes or EIO, never other
// bytes and never another errno; once the faults stop, the same mount reads everything.
func TestFaultReads(t *testing.T) {
	p := faultproxy.New(11)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	objs := faultObjects()
	var names []string
	for name, data := range objs {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	// The cache is smaller than the data, and metadata expires quickly, so faults keep hitting
	// chunk fetches, lookups and listings for the whole test.
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t),
		flags: []string{"--chunk-size", "1MiB", "--cache-size", "8MiB", "--readahead", "2", "--ttl", "1s"}})

	p.SetRules(tenPercent("GET")...)
	p.ResetStats()
	var res tally
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 5))
			for range perWorker {
				name := names[rng.IntN(len(names))]
				want := objs[name]
				var err error
				if rng.IntN(2) == 0 || len(want) == 0 {
					err = readVerified(d.path("ds", name), want)
				} else {
					err = randomPreads(d.path("ds", name), want, rng, 4)
				}
				classifyRead(&res, name, err)
			}
		}()
	}
	wg.Wait()
	st := p.Stats()
	t.Logf("reads under faults: %v; requests %d, faults injected %d (%.1f%%) %v",
		res.String(), st.Requests, st.Faults, 100*float64(st.Faults)/float64(max(st.Requests, 1)), st.ByRule)
	res.failIfBad(t, "reads under faults")
	if st.Faults == 0 || res.get("verified") == 0 {
		t.Fatalf("the test proved nothing: %d faults injected, %d reads verified", st.Faults, res.get("verified"))
	}

	// Faults stop: the same mount, without a restart, reads every object correctly at once.
	p.Clear()
	var after tally
	for _, name := range names {
		err := readVerified(d.path("ds", name), objs[name])
		if err != nil {
			after.bad("%s after the faults stopped: %v", name, err)
		} else {
			after.add("verified")
		}
	}
	after.failIfBad(t, "reads after the faults stopped (the mount must recover without a restart)")
	t.Logf("reads after the faults stopped: %v", after.String())
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("relDaemon exit after the fault test: %v\n%s", err, d.log())
	}
}

// randomPreads opens path and checks k random ranges against want.
func randomPreads(path string, want []byte, rng *rand.Rand, k int) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dropPageCache(f)
	for range k {
		off := rng.Int64N(int64(len(want)))
		n := 1 + rng.Int64N(300_000)
		if err := preadVerified(f, want, off, n); err != nil {
			return err
		}
	}
	return nil
}

// classifyRead counts a read's outcome: verified, EIO, or unexpected (wrong bytes, another
// errno).
func classifyRead(res *tally, name string, err error) {
	switch {
	case err == nil:
		res.add("verified")
	case isWrong(err):
		res.bad("%s: %v", name, err)
	case errnoOf(err) == syscall.EIO:
		res.add("EIO")
	default:
		res.bad("%s: %v (errno %d, %s): only EIO may report a failed read", name, err, errnoOf(err), errnoOf(err))
	}
}

// TestFaultWrites writes files through a mount while ~10% of the upload, compose and delete
// requests fail (including responses lost after the server acted): every file lands whole
// (close returned 0) or close/fsync reports the failure; no object is ever partial or mixed,
// no temporary part stays behind, and once the faults stop the same mount uploads again.
func TestFaultWrites(t *testing.T) {
	p := faultproxy.New(12)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	sizes := []int{0, 1, 1000, 300_000, 1<<20 + 7, 3<<20 + 11} // the last one is a composed upload
	olds := map[string][]byte{}
	for i := range 8 {
		name := fmt.Sprintf("o/k%d", i)
		olds[name] = randData(uint64(3000+i), 1000+i*400_000)
		if err := srv.PutObject(relBucket, "pre/"+name, olds[name], ""); err != nil {
			t.Fatal(err)
		}
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{
		"--chunk-size", "1MiB", "--cache-size", "32MiB",
		"--upload-chunk-size", "256KiB", "--compose-threshold", "2MiB", "--part-size", "512KiB", "--upload-workers", "2"}})
	if err := os.Mkdir(d.path("ds", "w"), 0o755); err != nil {
		t.Fatal(err)
	}

	var rules []faultproxy.Rule
	rules = append(rules, tenPercent("POST", "/upload/")...)
	rules = append(rules, tenPercent("PUT", "/upload/")...)
	rules = append(rules, tenPercent("POST", "/compose")...)
	rules = append(rules, tenPercent("DELETE")...)
	for i := range rules {
		rules[i].Name = rules[i].Method + " " + strings.Join(rules[i].Match, "") + " " + rules[i].Name
	}
	p.SetRules(rules...)
	p.ResetStats()

	type written struct {
		name string
		data []byte
		old  []byte // the object's bytes before an overwrite; nil for a new file
		err  error  // close (or fsync) error
	}
	var (
		mu    sync.Mutex
		files []written
		res   tally
		wg    sync.WaitGroup
	)
	const writers, perWriter = 6, 6
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				name := fmt.Sprintf("w/f%d-%d", w, i)
				data := randData(uint64(1000+w*100+i), sizes[(w+i)%len(sizes)])
				err := writeThroughMount(d.path("ds", name), data, i%2 == 0)
				switch {
				case err == nil:
					res.add("landed")
				case errnoOf(err) == syscall.EIO:
					res.add("refused (EIO)")
				default:
					res.bad("%s: %v (errno %d): a failed upload must report EIO", name, err, errnoOf(err))
				}
				mu.Lock()
				files = append(files, written{name: name, data: data, err: err})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	st := p.Stats()
	t.Logf("writes under faults: %v; requests %d, faults injected %d %v", res.String(), st.Requests, st.Faults, st.ByRule)

	// Overwrites (O_TRUNC of existing objects) under the same faults, except that resumable
	// chunks only get error answers: the emulator appends a chunk re-sent after a lost
	// response (see EMULATOR.md), so the writer then deletes the wrong generation it made and
	// the old object is gone, which GCS would not do.
	var ow []faultproxy.Rule
	for _, r := range tenPercent("", "upload_id=") {
		if r.Action == faultproxy.Status {
			ow = append(ow, r)
		}
	}
	ow = append(ow, faultproxy.Rule{Name: "chunk passes", Match: []string{"upload_id="}, Action: faultproxy.Stall})
	ow = append(ow, tenPercent("POST", "/upload/")...)
	ow = append(ow, tenPercent("POST", "/compose")...)
	ow = append(ow, tenPercent("DELETE")...)
	for i := range ow {
		ow[i].Name = "overwrite: " + ow[i].Method + " " + strings.Join(ow[i].Match, "") + " " + ow[i].Name
	}
	p.SetRules(ow...)
	p.ResetStats()
	var ores tally
	for name, old := range olds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randData(uint64(len(name))<<20|uint64(len(old)), len(old)+12345)
			err := writeThroughMount(d.path("ds", name), data, false)
			switch {
			case err == nil:
				ores.add("landed")
			case errnoOf(err) == syscall.EIO:
				ores.add("refused (EIO)")
			default:
				ores.bad("overwrite %s: %v (errno %d): a failed upload must report EIO", name, err, errnoOf(err))
			}
			mu.Lock()
			files = append(files, written{name, data, old, err})
			mu.Unlock()
		}()
	}
	wg.Wait()
	ost := p.Stats()
	t.Logf("overwrites under faults: %v; requests %d, faults injected %d (less %d chunks passed) %v",
		ores.String(), ost.Requests, ost.Faults-ost.ByRule["overwrite:  upload_id= chunk passes"], ost.ByRule["overwrite:  upload_id= chunk passes"], ost.ByRule)
	ores.failIfBad(t, "overwrites under faults")
	for _, n := range []string{"landed", "refused (EIO)"} {
		res.counts[n] += ores.get(n)
	}
	res.failIfBad(t, "writes under faults")
	if st.Faults == 0 {
		t.Fatal("no fault was injected")
	}

	// What is in the bucket: whole objects only, and every file whose close succeeded.
	checkObjects := func(phase string, refusedMayExist bool) {
		t.Helper()
		for _, f := range files {
			obj, err := srv.GetObject(relBucket, "pre/"+f.name)
			switch {
			case err != nil && f.err == nil:
				t.Errorf("%s: %s: close returned success but there is no object (%v): DATA LOSS", phase, f.name, err)
			case err != nil && f.old != nil:
				t.Errorf("%s: %s: a refused overwrite (%v) left no object: the old bytes are LOST", phase, f.name, f.err)
			case err == nil && f.err != nil && f.old != nil && bytes.Equal(obj.Content, f.old):
				// Refused overwrite: the old object is intact.
			case err == nil && !bytes.Equal(obj.Content, f.data):
				t.Errorf("%s: %s: the object holds %d bytes (sha %s), the file %d bytes (sha %s): PARTIAL OR MIXED OBJECT",
					phase, f.name, len(obj.Content), shortSHA(obj.Content), len(f.data), shortSHA(f.data))
			case err == nil && f.err != nil && !refusedMayExist:
				t.Logf("%s: %s: close reported %v, yet the whole object landed (a response lost after success)", phase, f.name, f.err)
			}
		}
		if parts, _ := srv.ObjectNames(relBucket, "pre/.plxfs-tmp/"); len(parts) != 0 {
			t.Errorf("%s: temporary upload parts left in the bucket: %q (look for \"could not delete\" in the daemon log: "+
				"one failed DELETE must not leave a part behind; store/gcs retries deletes that name a generation, not "+
				"Delete(name, 0), so delete parts by generation or list the upload's directory at the end as transfer's cleanup does)", phase, parts)
		}
	}
	checkObjects("under faults", false)

	// Faults stop: the same mount uploads the refused files on their next flush, and new ones.
	p.Clear()
	var again tally
	for i, f := range files {
		if f.err == nil {
			continue
		}
		g, err := os.OpenFile(d.path("ds", f.name), os.O_WRONLY, 0)
		if err == nil {
			err = g.Close()
		}
		if err != nil {
			again.bad("%s: flush after the faults stopped: %v", f.name, err)
			continue
		}
		again.add("refused file landed on the next flush")
		files[i].err = nil
	}
	for i := range 4 {
		name := fmt.Sprintf("w/after%d", i)
		data := randData(uint64(5000+i), sizes[2+i])
		if err := writeThroughMount(d.path("ds", name), data, false); err != nil {
			again.bad("%s: write after the faults stopped: %v", name, err)
			continue
		}
		again.add("new file landed")
		files = append(files, written{name: name, data: data})
	}
	t.Logf("after the faults stopped: %v", again.String())
	again.failIfBad(t, "writes after the faults stopped (the mount must recover without a restart)")
	checkObjects("after the faults stopped", true)
	for _, f := range files {
		if err := readVerified(d.path("ds", f.name), f.data); err != nil {
			t.Errorf("reading back %s through the mount: %v", f.name, err)
		}
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("relDaemon exit: %v\n%s", err, d.log())
	}
}

// writeThroughMount creates path with data, fsyncs when asked, and closes it; the first error
// of write, fsync or close is returned.
func writeThroughMount(path string, data []byte, fsync bool) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	for off := 0; off < len(data); {
		n := min(len(data)-off, 128<<10)
		if _, err := f.Write(data[off : off+n]); err != nil {
			f.Close()
			return err
		}
		off += n
	}
	if fsync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// opTimeoutFlags are the names a mount flag bounding one backend operation could have.
var opTimeoutFlags = []string{"--op-timeout", "--operation-timeout", "--request-timeout", "--timeout"}

// mountOpTimeoutFlag returns the mount's per-operation timeout flag, or "".
func mountOpTimeoutFlag(t *testing.T) string {
	res := runPlxfs(t, nil, "mount", "--help")
	for _, f := range opTimeoutFlags {
		if strings.Contains(res.Stdout, f+" ") {
			return f
		}
	}
	return ""
}

// TestFaultStalledBackend: while every request to the backend stalls, stat and ls of names
// the mount has not cached end with EIO after the mount's operation timeout instead of hanging,
// and data already cached keeps being served. A backend that answers 503 forever costs a
// bounded number of attempts and ends in EIO. When the backend recovers, so does the mount.
func TestFaultStalledBackend(t *testing.T) {
	p := faultproxy.New(13)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	warm := randData(1, 3<<20+5)
	cold := randData(2, 2<<20)
	for name, data := range map[string][]byte{"warm.bin": warm, "cold.bin": cold, "colddir/a": cold, "cold503.bin": cold} {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	flags := []string{"--chunk-size", "1MiB", "--cache-size", "64MiB", "--ttl", "10m"}
	const opTimeout = 5 * time.Second
	timeoutFlag := mountOpTimeoutFlag(t)
	if timeoutFlag != "" {
		flags = append(flags, timeoutFlag, opTimeout.String())
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: flags})

	// Warm: warm.bin is looked up, opened and read whole (all its chunks cached).
	if err := readVerified(d.path("ds", "warm.bin"), warm); err != nil {
		t.Fatal(err)
	}
	held, err := os.Open(d.path("ds", "warm.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	t.Run("503 forever", func(t *testing.T) {
		p.SetRules(faultproxy.Rule{Name: "503 forever", Status: 503})
		p.ResetStats()
		err := readVerified(d.path("ds", "cold503.bin"), cold)
		st := p.Stats()
		t.Logf("read of an object while the backend answers 503: %v after %d attempts", err, st.Faults)
		if err == nil || errnoOf(err) != syscall.EIO {
			t.Errorf("read while every request is refused: %v, want EIO", err)
		}
		// The lookup, the open and the chunk fetch each retry a bounded number of times (the
		// store client's budget: 6 attempts per call).
		if st.Faults > 40 {
			t.Errorf("%d requests for one read while the backend refuses everything: retries are not bounded", st.Faults)
		}
		p.Clear()
	})

	p.SetRules(faultproxy.Rule{Name: "stall", Action: faultproxy.Stall, Stall: 5 * time.Minute})
	p.ResetStats()
	type outcome struct {
		what string
		err  error
		took time.Duration
	}
	done := make(chan outcome, 2)
	start := time.Now()
	go func() {
		_, err := os.Stat(d.path("ds", "cold.bin"))
		done <- outcome{"stat ds/cold.bin", err, time.Since(start)}
	}()
	go func() {
		_, err := os.ReadDir(d.path("ds", "colddir"))
		done <- outcome{"ls ds/colddir", err, time.Since(start)}
	}()
	if !pollUntil(20*time.Second, func() bool { return p.Stats().ByRule["stall"] >= 2 }) {
		t.Fatalf("the stat and ls never reached the backend (stalled requests: %d)", p.Stats().ByRule["stall"])
	}

	// Meanwhile cached data is served, through the open handle and through a new open.
	served := make(chan error, 1)
	go func() {
		dropPageCache(held)
		err := preadVerified(held, warm, 0, int64(len(warm)))
		if err == nil {
			err = readVerified(d.path("ds", "warm.bin"), warm)
		}
		served <- err
	}()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("cached warm.bin while the backend stalls: %v", err)
		} else {
			t.Logf("cached data served while the backend stalls (%v after the stall began)", time.Since(start).Round(time.Millisecond))
		}
	case <-time.After(30 * time.Second):
		t.Errorf("reading cached warm.bin blocked for 30s while the backend stalls: cached data must not wait for the backend")
	}

	// The stalled operations must end with EIO after the operation timeout.
	watchdog := time.After(30 * time.Second)
	for range 2 {
		select {
		case o := <-done:
			t.Logf("%s while the backend stalls: %v after %v", o.what, o.err, o.took.Round(time.Millisecond))
			if errnoOf(o.err) != syscall.EIO {
				t.Errorf("%s while the backend stalls: %v, want EIO", o.what, o.err)
			}
		case <-watchdog:
			msg := fmt.Sprintf("stat/ls of uncached names still hang after 30s while the backend stalls "+
				"(stalled requests: %d).", p.Stats().ByRule["stall"])
			if timeoutFlag == "" {
				msg += " plxfs mount has no per-operation timeout flag (looked for " + strings.Join(opTimeoutFlags, ", ") +
					" in `plxfs mount --help`): fs must bound each backend call made for a FUSE request (Lookup/Getattr/" +
					"Readdir/Open and chunk fetches) with a context deadline from such a flag and answer EIO when it expires; " +
					"today a request that never answers hangs the syscall until the backend answers (the store client's " +
					"RetryDeadline only applies between attempts) and cache.FetchTimeout (2m) is the only bound on reads."
			} else {
				msg += fmt.Sprintf(" The mount ran with %s %v, which did not end them.", timeoutFlag, opTimeout)
			}
			// Killing the daemon releases the hung syscalls (ENOTCONN) so the test can end.
			d.kill()
			t.Fatal(msg)
		}
	}

	// The backend recovers: the same mount answers.
	p.Clear()
	if err := readVerified(d.path("ds", "cold.bin"), cold); err != nil {
		t.Errorf("cold.bin after the backend recovered: %v", err)
	}
	if ents, err := os.ReadDir(d.path("ds", "colddir")); err != nil || len(ents) != 1 {
		t.Errorf("ls colddir after the backend recovered: %v %v", ents, err)
	}
	held.Close() // an open file keeps the mount busy at unmount
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("relDaemon exit: %v\n%s", err, d.log())
	}
}
