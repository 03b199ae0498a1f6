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
