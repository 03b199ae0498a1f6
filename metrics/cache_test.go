package metrics_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/metrics"
)

func TestCacheCollectorExportsStats(t *testing.T) {
	stats := cache.Stats{Bytes: 8192, Chunks: 2, Hits: 5, Misses: 3, Fetches: 4, BytesFetched: 7000,
		Evictions: 1, Damaged: 6, Readaheads: 9, FetchesInFlight: 2,
		MemoryBytes: 16 << 20, LinkFirstByte: 25 * time.Millisecond, LinkRate: 50 << 20, PartSize: 1 << 20}
	c := metrics.NewCacheCollector(func() cache.Stats { return stats }, 1<<20)
	want := `
# HELP plxfs_cache_bytes Disk space used by cached chunk files (4 KiB blocks).
# TYPE plxfs_cache_bytes gauge
plxfs_cache_bytes 8192
# HELP plxfs_cache_chunks Cached chunk files (whole chunks and random-read blocks).
# TYPE plxfs_cache_chunks gauge
plxfs_cache_chunks 2
# HELP plxfs_cache_damaged_total Chunk files found damaged (dropped and fetched again).
# TYPE plxfs_cache_damaged_total counter
plxfs_cache_damaged_total 6
# HELP plxfs_cache_evictions_total Chunk files evicted to stay under the cache size bound.
# TYPE plxfs_cache_evictions_total counter
plxfs_cache_evictions_total 1
# HELP plxfs_cache_fetch_part_bytes Size of the parallel GETs a chunk is fetched in now.
# TYPE plxfs_cache_fetch_part_bytes gauge
plxfs_cache_fetch_part_bytes 1.048576e+06
# HELP plxfs_cache_fetched_bytes_total Bytes the cache received from GCS.
# TYPE plxfs_cache_fetched_bytes_total counter
plxfs_cache_fetched_bytes_total 7000
# HELP plxfs_cache_fetches_in_flight Range requests of the cache in progress.
# TYPE plxfs_cache_fetches_in_flight gauge
plxfs_cache_fetches_in_flight 2
# HELP plxfs_cache_fetches_total Range requests the cache sent to GCS.
# TYPE plxfs_cache_fetches_total counter
plxfs_cache_fetches_total 4
# HELP plxfs_cache_hits_total Chunk reads served from a cached chunk file.
# TYPE plxfs_cache_hits_total counter
plxfs_cache_hits_total 5
# HELP plxfs_cache_link_first_byte_seconds The shortest recent delay to a chunk GET's response: the link's first-byte delay, as the fetches learnt it.
# TYPE plxfs_cache_link_first_byte_seconds gauge
plxfs_cache_link_first_byte_seconds 0.025
# HELP plxfs_cache_link_get_bytes_per_second Moving average of one chunk GET's transfer rate, as the fetches learnt it.
# TYPE plxfs_cache_link_get_bytes_per_second gauge
plxfs_cache_link_get_bytes_per_second 5.24288e+07
# HELP plxfs_cache_max_bytes Bound on the disk space of cached chunk files (--cache-size).
# TYPE plxfs_cache_max_bytes gauge
plxfs_cache_max_bytes 1.048576e+06
# HELP plxfs_cache_memory_bytes Chunk buffers in use by the read path (within --prefetch-memory).
# TYPE plxfs_cache_memory_bytes gauge
plxfs_cache_memory_bytes 1.6777216e+07
# HELP plxfs_cache_misses_total Chunk reads that started or joined a fetch from GCS.
# TYPE plxfs_cache_misses_total counter
plxfs_cache_misses_total 3
# HELP plxfs_cache_readaheads_total Background fetches started by readahead.
# TYPE plxfs_cache_readaheads_total counter
plxfs_cache_readaheads_total 9
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

// Values are read at scrape time, through the Metrics registry and handler.
func TestCacheCollectorReadsAtScrape(t *testing.T) {
	var mu sync.Mutex
	stats := cache.Stats{Hits: 1}
	m := metrics.New()
	m.Registry().MustRegister(metrics.NewCacheCollector(func() cache.Stats {
		mu.Lock()
		defer mu.Unlock()
		return stats
	}, 0))
	if got := value(t, m, "plxfs_cache_hits_total"); got != 1 {
		t.Fatalf("hits %v, want 1", got)
	}
	mu.Lock()
	stats.Hits, stats.Bytes = 42, 4096
	mu.Unlock()
	text := scrape(t, m)
	for _, line := range []string{"plxfs_cache_hits_total 42", "plxfs_cache_bytes 4096"} {
		if !hasLine(text, line) {
			t.Errorf("scrape has no line %q", line)
		}
	}
	if hasLine(text, "plxfs_cache_max_bytes") {
		t.Error("plxfs_cache_max_bytes exported with maxBytes 0")
	}
}

// Every plxfs metric follows the Prometheus naming conventions (promlint).
func TestMetricNamesLint(t *testing.T) {
	m := metrics.New()
	m.Registry().MustRegister(metrics.NewCacheCollector(func() cache.Stats { return cache.Stats{} }, 1))
	problems, err := testutil.GatherAndLint(m.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "plxfs_") {
			t.Errorf("%s: %s", p.Metric, p.Text)
		}
	}
}
