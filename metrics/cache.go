package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/plxfs/plxfs/cache"
)

// NewCacheCollector returns a collector that calls stats at every scrape and exports it as
// plxfs_cache_* metrics, plus plxfs_cache_max_bytes = maxBytes when maxBytes > 0. stats must
// be cheap and safe for concurrent use (cache.Cache.Stats is: it reads atomics). Register it
// in Metrics.Registry.
func NewCacheCollector(stats func() cache.Stats, maxBytes int64) prometheus.Collector {
	return &cacheCollector{stats: stats, maxBytes: maxBytes}
}

type cacheCollector struct {
	stats    func() cache.Stats
	maxBytes int64
}

var (
	descCacheBytes = prometheus.NewDesc("plxfs_cache_bytes",
		"Disk space used by cached chunk files (4 KiB blocks).", nil, nil)
	descCacheMaxBytes = prometheus.NewDesc("plxfs_cache_max_bytes",
		"Bound on the disk space of cached chunk files (--cache-size).", nil, nil)
	descCacheChunks = prometheus.NewDesc("plxfs_cache_chunks",
		"Cached chunk files (whole chunks and random-read blocks).", nil, nil)
	descCacheHits = prometheus.NewDesc("plxfs_cache_hits_total",
		"Chunk reads served from a cached chunk file.", nil, nil)
	descCacheMisses = prometheus.NewDesc("plxfs_cache_misses_total",
		"Chunk reads that started or joined a fetch from GCS.", nil, nil)
	descCacheEvictions = prometheus.NewDesc("plxfs_cache_evictions_total",
		"Chunk files evicted to stay under the cache size bound.", nil, nil)
	descCacheDamaged = prometheus.NewDesc("plxfs_cache_damaged_total",
		"Chunk files found damaged (dropped and fetched again).", nil, nil)
	descCacheFetches = prometheus.NewDesc("plxfs_cache_fetches_total",
		"Range requests the cache sent to GCS.", nil, nil)
	descCacheFetchedBytes = prometheus.NewDesc("plxfs_cache_fetched_bytes_total",
		"Bytes the cache received from GCS.", nil, nil)
	descCacheReadaheads = prometheus.NewDesc("plxfs_cache_readaheads_total",
		"Background fetches started by readahead.", nil, nil)
	descCacheFetchesInFlight = prometheus.NewDesc("plxfs_cache_fetches_in_flight",
		"Range requests of the cache in progress.", nil, nil)
	descCacheMemoryBytes = prometheus.NewDesc("plxfs_cache_memory_bytes",
		"Chunk buffers in use by the read path (within --prefetch-memory).", nil, nil)
	descLinkFirstByte = prometheus.NewDesc("plxfs_cache_link_first_byte_seconds",
		"The shortest recent delay to a chunk GET's response: the link's first-byte delay, as the fetches learnt it.", nil, nil)
	descLinkRate = prometheus.NewDesc("plxfs_cache_link_get_bytes_per_second",
		"Moving average of one chunk GET's transfer rate, as the fetches learnt it.", nil, nil)
	descPartSize = prometheus.NewDesc("plxfs_cache_fetch_part_bytes",
		"Size of the parallel GETs a chunk is fetched in now.", nil, nil)
)

func (c *cacheCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCacheBytes, descCacheChunks, descCacheHits, descCacheMisses,
		descCacheEvictions, descCacheDamaged, descCacheFetches, descCacheFetchedBytes,
		descCacheReadaheads, descCacheFetchesInFlight, descCacheMemoryBytes, descLinkFirstByte, descLinkRate, descPartSize} {
		ch <- d
	}
	if c.maxBytes > 0 {
		ch <- descCacheMaxBytes
	}
}

func (c *cacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	counter := func(d *prometheus.Desc, v int64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge(descCacheBytes, float64(s.Bytes))
	gauge(descCacheChunks, float64(s.Chunks))
	if c.maxBytes > 0 {
		gauge(descCacheMaxBytes, float64(c.maxBytes))
	}
	gauge(descCacheFetchesInFlight, float64(s.FetchesInFlight))
	gauge(descCacheMemoryBytes, float64(s.MemoryBytes))
	gauge(descLinkFirstByte, s.LinkFirstByte.Seconds())
	gauge(descLinkRate, float64(s.LinkRate))
	gauge(descPartSize, float64(s.PartSize))
	counter(descCacheHits, s.Hits)
	counter(descCacheMisses, s.Misses)
	counter(descCacheEvictions, s.Evictions)
	counter(descCacheDamaged, s.Damaged)
	counter(descCacheFetches, s.Fetches)
	counter(descCacheFetchedBytes, s.BytesFetched)
	counter(descCacheReadaheads, s.Readaheads)
}
