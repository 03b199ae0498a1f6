package integration

// A backend in trouble, through a default mount: cached files keep being served while every
// metadata request stalls; reads of uncached data fail at once once the backend has failed all
// of them for a few seconds, and recover when it answers again; a lookup of a file whose stat
// answered does not fail because the directory check failed.

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// mediaReads match the storage client's object reads (GET /BUCKET/NAME?generation=...).
var mediaReads = []string{"generation="}

// daemonStatus is `plxfs status --output json` of the mount at mnt.
func daemonStatus(t *testing.T, mnt string) control.Status {
	t.Helper()
	res := runPlxfs(t, nil, "status", "--output", "json", mnt)
	var st control.Status
	if err := json.Unmarshal([]byte(res.Stdout), &st); res.Code != 0 || err != nil {
		t.Fatalf("plxfs status: exit %d, %v: %s %s", res.Code, err, res.Stdout, res.Stderr)
	}
	return st
}

// TestCachedFileServedDuringMetadataStall: a file read whole (cached) and known to the mount,
// whose metadata has expired (TTL 1 s), is opened and read while every metadata request
// stalls for 20 s: its lookup is answered from what the mount knew (counted in status,
// logged as not revalidated), and the cache serves its bytes. A name the mount never knew
// still fails with EIO.
func TestCachedFileServedDuringMetadataStall(t *testing.T) {
	p := faultproxy.New(41)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	warm := randData(1, 3<<20+5)
	for name, data := range map[string][]byte{"sub/warm.bin": warm, "new.bin": warm[:100]} {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--ttl", "1s"}})
	if err := readVerified(d.path("ds", "sub", "warm.bin"), warm); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond) // past the TTL: every name must be revalidated now

	p.SetRules(faultproxy.Rule{Name: "metadata stall", Method: "GET", Match: metadataRequests, Action: faultproxy.Stall, Stall: stallFor})
	for i := range 3 {
		start := time.Now()
		err := readVerified(d.path("ds", "sub", "warm.bin"), warm)
		t.Logf("open and read of the cached file, metadata stalled, #%d: %v  %v", i+1, time.Since(start).Round(time.Millisecond), err)
		if err != nil {
			t.Fatalf("a cached file opened while metadata stalls: %v; want its cached bytes", err)
		}
	}
	if _, err := os.Stat(d.path("ds", "new.bin")); errnoOf(err) != syscall.EIO {
		t.Errorf("stat of a name the mount never knew, metadata stalled: %v, want EIO", err)
	}
	if n := p.Stats().ByRule["metadata stall"]; n == 0 {
		t.Fatalf("no metadata request was stalled: the test proves nothing")
	}
	st := daemonStatus(t, d.mnt)
	if st.Integrity.StaleServed == 0 {
		t.Errorf("status integrity %+v: want the stale answers counted", st.Integrity)
	}
	if !strings.Contains(d.log(), "not revalidated") {
		t.Errorf("the daemon did not log that it served metadata not revalidated:\n%s", d.log())
	}
	p.Clear()
	if !pollUntil(30*time.Second, func() bool { _, err := os.Stat(d.path("ds", "new.bin")); return err == nil }) {
		t.Errorf("new.bin still fails 30 s after the stall ended")
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}

// TestOutageFailsFastAndRecovers: every media read fails (503) for as long as the test says.
// The first reads of uncached files fail with EIO after the client's retries and hedges; once
// reads have failed for a few seconds the read circuit opens (status shows it), and further
// reads fail with EIO at once, without requests (the proxy sees probes only). When the backend
// answers again, a probe closes the circuit and the same mount reads every file.
func TestOutageFailsFastAndRecovers(t *testing.T) {
	const files = 40
	p := faultproxy.New(42)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	data := map[string][]byte{}
	for i := range files {
		name := fmt.Sprintf("f%02d.bin", i)
		data[name] = randData(uint64(100+i), 100_000+i)
		if err := srv.PutObject(relBucket, "pre/"+name, data[name], ""); err != nil {
			t.Fatal(err)
		}
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--ttl", "10m"}})
	// The loader lists the directory first: names and sizes are known, no byte is cached.
	if ents, err := os.ReadDir(d.path("ds")); err != nil || len(ents) != files {
		t.Fatalf("ls: %d entries, %v", len(ents), err)
	}

	p.SetRules(faultproxy.Rule{Name: "media outage", Method: "GET", Match: mediaReads, Action: faultproxy.Status, Status: 503})
	i := 0
	read := func() error {
		name := fmt.Sprintf("f%02d.bin", i)
		i++
		return readVerified(d.path("ds", name), data[name])
	}
	for st := daemonStatus(t, d.mnt); st.Integrity.CircuitsOpen == 0; st = daemonStatus(t, d.mnt) {
		if i >= files/2 {
			t.Fatalf("the read circuit did not open after %d failed reads; status %+v", i, st.Integrity)
		}
		start := time.Now()
		err := read()
		t.Logf("read #%d during the outage, circuit closed: %v  %v", i, time.Since(start).Round(time.Millisecond), err)
		if errnoOf(err) != syscall.EIO {
			t.Fatalf("read #%d during the outage: %v, want EIO", i, err)
		}
	}
	opened := i
	before, faultsBefore := daemonStatus(t, d.mnt).Integrity, p.Stats().ByRule["media outage"]
	const n = 10
	start := time.Now()
	for range n {
		if err := read(); errnoOf(err) != syscall.EIO {
			t.Fatalf("read #%d with the circuit open: %v, want EIO", i, err)
		}
	}
	t.Logf("circuit opened after %d failed reads; the next %d reads failed in %v in all", opened, n, time.Since(start).Round(time.Millisecond))
	after, faults := daemonStatus(t, d.mnt).Integrity, p.Stats().ByRule["media outage"]-faultsBefore
	if after.FailedFast-before.FailedFast < n {
		t.Errorf("%d reads with the circuit open, but only %d calls failed at once (status before %+v, after %+v)", n, after.FailedFast-before.FailedFast, before, after)
	}
	if faults >= n {
		t.Errorf("%d media requests reached the backend during %d reads with the circuit open: want probes only", faults, n)
	}
	if after.CircuitsOpen == 0 || after.CircuitOpenings == 0 {
		t.Errorf("status %+v: want the open circuit shown", after)
	}
	if text := runPlxfs(t, nil, "status", d.mnt); !strings.Contains(text.Stdout, "NOT ANSWERING") {
		t.Errorf("plxfs status does not say the backend is not answering:\n%s", text.Stdout)
	}

	// The backend answers again: the first probe closes the circuit, and every file reads.
	p.Clear()
	if !pollUntil(30*time.Second, func() bool { return readVerified(d.path("ds", "f00.bin"), data["f00.bin"]) == nil }) {
		t.Fatalf("reads still fail 30 s after the outage ended; status %+v", daemonStatus(t, d.mnt).Integrity)
	}
	if st := daemonStatus(t, d.mnt).Integrity; st.CircuitsOpen != 0 {
		t.Errorf("status %+v after recovery: want no circuit open", st)
	}
	for name, want := range data {
		if err := readVerified(d.path("ds", name), want); err != nil {
			t.Errorf("%s after the outage: %v", name, err)
		}
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}

// TestLookupWhenOnlyListingsFail: every listing fails (503) while stats answer. A lookup of an
// existing file still finds it (its stat answered; the failed directory check does not fail
// it) and the file reads; a lookup of a missing name fails with EIO, not ENOENT: without the
// listing a directory of that name is not ruled out.
func TestLookupWhenOnlyListingsFail(t *testing.T) {
	p := faultproxy.New(43)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	mib := randData(7, 1<<20)
	if err := srv.PutObject(relBucket, "pre/big.bin", mib, ""); err != nil {
		t.Fatal(err)
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t), flags: []string{"--ttl", "10m"}})
	p.SetRules(faultproxy.Rule{Name: "list 503", Method: "GET", Match: []string{"/o?"}, Action: faultproxy.Status, Status: 503})
	fi, err := os.Stat(d.path("ds", "big.bin"))
	if err != nil || fi.Size() != int64(len(mib)) {
		t.Fatalf("stat of an existing file while listings fail: %v, %v; want the file", fi, err)
	}
	if err := readVerified(d.path("ds", "big.bin"), mib); err != nil {
		t.Errorf("read: %v", err)
	}
	if _, err := os.Stat(d.path("ds", "missing.bin")); errnoOf(err) != syscall.EIO {
		t.Errorf("stat of a missing name while listings fail: %v, want EIO", err)
	}
	if p.Stats().ByRule["list 503"] == 0 {
		t.Fatalf("no listing failed: the test proves nothing")
	}
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}
