package metrics_test

import (
	"errors"
	"testing"

	"github.com/plxfs/plxfs/metrics"
)

func TestObserverUploads(t *testing.T) {
	m := metrics.New()
	var o metrics.Observer = m
	o.UploadStarted()
	o.UploadStarted()
	o.UploadStarted()
	if got := value(t, m, "plxfs_uploads_in_flight"); got != 3 {
		t.Fatalf("in flight %v, want 3", got)
	}
	o.UploadFinished(100, nil)
	o.UploadFinished(50, errors.New("precondition failed"))
	o.CacheServed(4096)
	o.CacheServed(10)
	want := map[string]float64{
		"plxfs_uploads_in_flight":        1,
		"plxfs_uploads_total":            2,
		"plxfs_upload_bytes_total":       100, // failed uploads add nothing
		"plxfs_upload_failures_total":    1,
		"plxfs_cache_served_bytes_total": 4106,
	}
	for name, w := range want {
		if got := value(t, m, name); got != w {
			t.Errorf("%s = %v, want %v", name, got, w)
		}
	}
	s := m.Snapshot()
	if s != (metrics.Snapshot{UploadsInFlight: 1, Uploads: 2, UploadBytes: 100, UploadFailures: 1, CacheServed: 4106}) {
		t.Errorf("Snapshot = %+v, disagrees with the metrics", s)
	}
	// Nop accepts the same calls.
	metrics.Nop.UploadStarted()
	metrics.Nop.UploadFinished(1, nil)
	metrics.Nop.CacheServed(1)
}

// Two Metrics never share a registry (no global state), and the handler serves the plxfs
// metrics with the Go runtime's.
func TestMetricsAreRegistryScoped(t *testing.T) {
	a, b := metrics.New(), metrics.New()
	a.UploadStarted()
	if got := value(t, b, "plxfs_uploads_in_flight"); got != 0 {
		t.Errorf("an upload on one Metrics shows on another: %v", got)
	}
	text := scrape(t, a)
	for _, line := range []string{"plxfs_uploads_in_flight 1", "plxfs_open_handles 0", "plxfs_gcs_read_bytes_total 0", "go_goroutines ", "process_open_fds "} {
		if !hasLine(text, line) {
			t.Errorf("scrape has no line starting %q", line)
		}
	}
}

// The integrity and latency counters: checksum mismatches reported by the read path, and what
// the storage layers count in StorageCounters, agree between the metrics and Snapshot.
func TestIntegrityCounters(t *testing.T) {
	m := metrics.New()
	m.ChecksumMismatch()
	m.ChecksumMismatch()
	c := m.StorageCounters()
	c.OutcomeChecked(true)
	c.OutcomeChecked(true)
	c.OutcomeChecked(false)
	c.Hedged()
	want := []struct {
		name   string
		labels []string
		v      float64
	}{
		{"plxfs_checksum_mismatch_total", nil, 2},
		{"plxfs_upload_outcome_checked_total", []string{"result", "landed"}, 2},
		{"plxfs_upload_outcome_checked_total", []string{"result", "not_landed"}, 1},
		{"plxfs_hedged_requests_total", nil, 1},
		{"plxfs_hedge_wins_total", nil, 0},
		{"plxfs_stalled_calls_total", nil, 0},
	}
	for _, w := range want {
		if got := value(t, m, w.name, w.labels...); got != w.v {
			t.Errorf("%s%v = %v, want %v", w.name, w.labels, got, w.v)
		}
	}
	s := m.Snapshot()
	if s.ChecksumMismatches != 2 || s.Storage.OutcomeLanded != 2 || s.Storage.OutcomeNotLanded != 1 || s.Storage.Hedged != 1 {
		t.Errorf("Snapshot %+v disagrees with the metrics", s)
	}
	text := scrape(t, m)
	for _, line := range []string{`plxfs_upload_outcome_checked_total{result="landed"} 2`, "plxfs_checksum_mismatch_total 2", "plxfs_hedged_requests_total 1"} {
		if !hasLine(text, line) {
			t.Errorf("scrape has no line starting %q", line)
		}
	}
}
