// Package metrics is what a plxfs daemon counts, as Prometheus metrics: FUSE requests, storage
// (GCS) calls, the read cache, uploads and open handles. Everything lives in one Metrics value
// with its own registry (never prometheus.DefaultRegisterer), served by Metrics.Handler.
//
// # Sources
//
// Each metric is measured at the one place every event of its kind crosses, by a decorator
// over an interface plxfs already has, so the measured code does not change:
//
//   - FUSE wraps go-fuse's fuse.RawFileSystem (what fs.NewNodeFS returns): every request
//     is counted and timed by operation, every non-OK status (and negative lookup entry)
//     counted by errno, read and written bytes summed, and open file handles tracked
//     (successful Open/Create/Tmpfile minus Release).
//   - Bucket wraps a store.Bucket: one request per call by method and outcome, latency, and
//     the bytes read from (and written to) GCS.
//   - Metrics.StorageCounters is a store.Counters that store/gcs (upload outcome checks),
//     store.WithHedging (hedges, stalled calls) and store.WithBreaker (open circuits, calls
//     failed at once) add to; it is read at scrape time.
//   - NewCacheCollector reads cache.Stats at scrape time (func() cache.Stats, so any cache
//     and any test double fit).
//   - Observer is the small interface for what only the filesystem knows: when a file's
//     upload starts and ends, how many bytes the read cache returned to a read, and when a
//     lookup was answered from stale metadata because the backend did not answer. *Metrics
//     implements it; Nop is the do-nothing default.
//
// # Metrics
//
//	plxfs_fuse_operations_total{op}               counter
//	plxfs_fuse_operation_duration_seconds{op}     histogram
//	plxfs_fuse_errors_total{op,errno}             counter (errno as "ENOENT")
//	plxfs_fuse_read_bytes_total                   counter
//	plxfs_fuse_write_bytes_total                  counter
//	plxfs_gcs_requests_total{method,code}         counter (code: ok, not_found, precondition, canceled, error)
//	plxfs_gcs_request_duration_seconds{method}    histogram
//	plxfs_gcs_read_bytes_total                    counter
//	plxfs_gcs_write_bytes_total                   counter
//	plxfs_cache_served_bytes_total                counter (Observer.CacheServed)
//	plxfs_cache_bytes, plxfs_cache_max_bytes, plxfs_cache_chunks, plxfs_cache_fetches_in_flight   gauges
//	plxfs_cache_memory_bytes, plxfs_cache_link_first_byte_seconds, plxfs_cache_link_get_bytes_per_second, plxfs_cache_fetch_part_bytes   gauges (the read path: memory in use, what the fetches learnt of the link, the part size)
//	plxfs_cache_{hits,misses,evictions,damaged,fetches,fetched_bytes,readaheads}_total            counters
//	plxfs_uploads_in_flight, plxfs_open_handles   gauges
//	plxfs_uploads_total, plxfs_upload_bytes_total, plxfs_upload_failures_total                     counters
//	plxfs_checksum_mismatch_total                 counter (Metrics.ChecksumMismatch, from the read path)
//	plxfs_upload_outcome_checked_total{result}    counter (result: landed, not_landed; store/gcs)
//	plxfs_hedged_requests_total, plxfs_hedge_wins_total, plxfs_stalled_calls_total   counters (store.WithHedging)
//	plxfs_storage_circuits_open                   gauge (store.WithBreaker)
//	plxfs_storage_circuit_openings_total, plxfs_storage_failed_fast_total            counters (store.WithBreaker)
//	plxfs_stale_metadata_served_total             counter (Observer.StaleServed)
//	go_*, process_*                               the Go runtime and process collectors
//
// The share of read bytes that did not need GCS is
// 1 - rate(plxfs_gcs_read_bytes_total) / rate(plxfs_cache_served_bytes_total) (readahead can
// make it briefly negative); the chunk hit ratio is hits / (hits + misses).
//
// # Decisions
//
//   - Labels never hold object names, bucket names or paths: the number of series is bounded
//     by the number of operations, methods, outcomes and errnos, whatever the workload.
//   - FUSE timing is a RawFileSystem decorator, not fuse.Server.RecordLatencies: go-fuse
//     v2.12 kept that method for compatibility but it does nothing.
//   - Values that plxfs status also shows (uploads, handles, bytes) are plain atomics exported
//     through CounterFunc/GaugeFunc, so the status and the metrics can never disagree; the
//     rest are ordinary client_golang collectors.
//   - A storage Read is one request from NewRangeReader to Close (its latency includes the
//     transfer), its outcome the first error other than io.EOF. Bytes count as they arrive.
//   - No locks of this package are held across calls into the wrapped bucket or file system.
package metrics
