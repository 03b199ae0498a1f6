package integration

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestCSIStallBounded holds a CSI volume to the bound TestStallMetadataBounded holds a mount
// to: while every metadata request stalls for 20 s, a stat of a new name and an ls of a new
// directory in the volume end (EIO) within stallBound, and cached data is served without
// waiting for any request: within the hedge floor (1 s), before which no stalled request
// could have been given up (a cached read of this volume, 1 MiB chunks on a race-built
// binary, takes about 0.2 s even with a healthy backend, so the mount's 0.1 s does not apply).
// A volume is built with the mount's bucket stack (hedging included); without hedging they
// would wait out the whole --op-timeout (30 s).
func TestCSIStallBounded(t *testing.T) {
	p := faultproxy.New(24)
	srv := startEmulator(t, emulator.Options{Buckets: []string{csiBucket}, Handler: p.Middleware})
	warm := randData(1, 3<<20+5)
	for name, data := range map[string][]byte{"ds/warm.bin": warm, "ds/cold.bin": warm[:1000], "ds/colddir/a": warm[:10]} {
		if err := srv.PutObject(csiBucket, name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	conf := writeFile(t, "conns.yaml", "connections:\n- name: ds1\n  kind: gcs\n  schema: {bucket: \"gs://"+csiBucket+"/ds\"}\n")
	d := startCSI(t, srv, conf)
	target := filepath.Join(t.TempDir(), "pods", "uid1", "volumes", "data")
	if err := d.publish("csi-stall", target, map[string]string{"connection": "ds1", "ttl": "10m"}, nil, true); err != nil {
		t.Fatalf("publish: %v", err)
	}
	defer d.unpublish("csi-stall", target)
	if err := readVerified(filepath.Join(target, "warm.bin"), warm); err != nil {
		t.Fatal(err)
	}

	p.SetRules(faultproxy.Rule{Name: "metadata stall", Method: "GET", Match: metadataRequests, Action: faultproxy.Stall, Stall: stallFor})
	for _, op := range []struct {
		what   string
		do     func() error
		cached bool
	}{
		{"stat of a new name (cold.bin)", func() error { _, err := os.Stat(filepath.Join(target, "cold.bin")); return err }, false},
		{"ls of a new directory (colddir)", func() error { _, err := os.ReadDir(filepath.Join(target, "colddir")); return err }, false},
		{"stat of a cached file (warm.bin)", func() error { _, err := os.Stat(filepath.Join(target, "warm.bin")); return err }, true},
		{"read of a cached file (warm.bin)", func() error { return readVerified(filepath.Join(target, "warm.bin"), warm) }, true},
	} {
		start := time.Now()
		err := op.do()
		took := time.Since(start)
		t.Logf("%-40s %8v  %v", op.what, took.Round(time.Millisecond), err)
		switch {
		case op.cached && (err != nil || took > time.Second):
			t.Errorf("%s: %v after %v; cached data must be served without waiting for a request", op.what, err, took)
		case !op.cached && took > stallBound:
			t.Errorf("%s took %v while metadata stalls %v: want at most %v, as a mount", op.what, took, stallFor, stallBound)
		case !op.cached && (err == nil || errnoOf(err) != syscall.EIO):
			t.Errorf("%s: %v, want EIO (every metadata request stalls)", op.what, err)
		}
	}
	if n := p.Stats().ByRule["metadata stall"]; n == 0 {
		t.Fatalf("no metadata request was stalled: the test proves nothing")
	}
	p.Clear()
	// The backend recovers: the same volume answers (the probe of an open circuit, if the
	// stall opened one, needs a moment).
	if !pollUntil(30*time.Second, func() bool { _, err := os.Stat(filepath.Join(target, "cold.bin")); return err == nil }) {
		t.Errorf("cold.bin after the stall: still failing")
	}
	if err := d.unpublish("csi-stall", target); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unpublish: %v", err)
	}
}
