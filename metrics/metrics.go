package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/store"
)

// Metrics is one daemon's set of collectors, registered in its own registry (never the
// process-wide default one, so that tests and several mounts in one process do not collide).
// All methods are safe for concurrent use. The zero value is not usable: call New.
type Metrics struct {
	reg *prometheus.Registry

	fuseOps        *prometheus.CounterVec   // op
	fuseDuration   *prometheus.HistogramVec // op
	fuseErrors     *prometheus.CounterVec   // op, errno
	fuseReadBytes  prometheus.Counter
	fuseWriteBytes prometheus.Counter

	gcsRequests   *prometheus.CounterVec   // method, code
	gcsDuration   *prometheus.HistogramVec // method
	gcsWriteBytes prometheus.Counter

	// The values below are also shown by plxfs status, so they are plain atomics exported
	// through CounterFunc/GaugeFunc: one source of truth for both.
	cacheServed     atomic.Int64
	uploadsInFlight atomic.Int64
	uploadBytes     atomic.Int64
	uploads         atomic.Int64
	uploadFailures  atomic.Int64
	openHandles     atomic.Int64
	gcsRead         atomic.Int64

	// Integrity and latency counters, also shown by plxfs status.
	checksumMismatches atomic.Int64
	staleServed        atomic.Int64
	storage            *store.Counters // filled by store/gcs, store.WithHedging and store.WithBreaker
}

// fuseBuckets spans a FUSE operation answered from memory (tens of µs) to one that waits for
// a large upload (tens of seconds): ×4 steps from 50µs to 13s.
var fuseBuckets = prometheus.ExponentialBuckets(50e-6, 4, 10)

// gcsBuckets spans a GCS request from a loopback emulator (1ms) to a multi-minute chunk
// upload: ×4 steps from 1ms to 65s.
var gcsBuckets = prometheus.ExponentialBuckets(1e-3, 4, 9)

// New returns a Metrics with every plxfs collector registered, plus the Go runtime and process
// collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry(), storage: &store.Counters{}}
	storage := func(f func(store.CountersSnapshot) int64) func() float64 {
		return func() float64 { return float64(f(m.storage.Snapshot())) }
	}
	m.fuseOps = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plxfs_fuse_operations_total",
		Help: "FUSE requests answered, by operation (lookup, getattr, read, write, flush, ...).",
	}, []string{"op"})
	m.fuseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plxfs_fuse_operation_duration_seconds",
		Help:    "Time plxfs took to answer a FUSE request, by operation.",
		Buckets: fuseBuckets,
	}, []string{"op"})
	m.fuseErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plxfs_fuse_errors_total",
		Help: "FUSE requests answered with an error, by operation and errno name (ENOENT on lookup is a normal miss).",
	}, []string{"op", "errno"})
	m.fuseReadBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plxfs_fuse_read_bytes_total",
		Help: "Bytes returned to applications by FUSE reads (from the read cache or from staged writes).",
	})
	m.fuseWriteBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plxfs_fuse_write_bytes_total",
		Help: "Bytes applications wrote through FUSE (staged locally until uploaded).",
	})
	m.gcsRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plxfs_gcs_requests_total",
		Help: "Storage calls by method (Stat, List, Read, Write, Compose, Copy, Delete, UpdateMetadata) and outcome (ok, not_found, precondition, canceled, error). Retries inside one call are not counted separately.",
	}, []string{"method", "code"})
	m.gcsDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "plxfs_gcs_request_duration_seconds",
		Help:    "Duration of storage calls by method; a Read lasts from the request until the reader is closed, a Write from NewWriter until Commit or Abort.",
		Buckets: gcsBuckets,
	}, []string{"method"})
	m.gcsWriteBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "plxfs_gcs_write_bytes_total",
		Help: "Object bytes sent to GCS by writers (uploads and upload parts).",
	})
	m.reg.MustRegister(
		m.fuseOps, m.fuseDuration, m.fuseErrors, m.fuseReadBytes, m.fuseWriteBytes,
		m.gcsRequests, m.gcsDuration, m.gcsWriteBytes,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_gcs_read_bytes_total",
			Help: "Object bytes downloaded from GCS (cache fills, readahead and uncached reads).",
		}, loadFloat(&m.gcsRead)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_cache_served_bytes_total",
			Help: "Bytes the read cache returned to FUSE reads (hits and misses); compare with plxfs_gcs_read_bytes_total.",
		}, loadFloat(&m.cacheServed)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plxfs_uploads_in_flight",
			Help: "Files being uploaded right now.",
		}, loadFloat(&m.uploadsInFlight)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_uploads_total",
			Help: "Uploads of files finished, successful or not.",
		}, loadFloat(&m.uploads)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_upload_bytes_total",
			Help: "Bytes of files uploaded successfully.",
		}, loadFloat(&m.uploadBytes)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_upload_failures_total",
			Help: "Uploads of files that failed (the file's changes stay staged; see the log).",
		}, loadFloat(&m.uploadFailures)),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plxfs_open_handles",
			Help: "Open file handles (opens and creates not yet released by the kernel).",
		}, loadFloat(&m.openHandles)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_checksum_mismatch_total",
			Help: "Object bytes fetched from GCS whose CRC32C did not match the object's (refetched or failed, never served).",
		}, loadFloat(&m.checksumMismatches)),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "plxfs_upload_outcome_checked_total",
			Help:        "Uploads whose final request failed with an unknown outcome (reset, timeout, 5xx, an error after a retry) and were checked against the bucket, by result: landed (intact, reported as success) or not_landed.",
			ConstLabels: prometheus.Labels{"result": "landed"},
		}, storage(func(s store.CountersSnapshot) int64 { return s.OutcomeLanded })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "plxfs_upload_outcome_checked_total",
			Help:        "Uploads whose final request failed with an unknown outcome (reset, timeout, 5xx, an error after a retry) and were checked against the bucket, by result: landed (intact, reported as success) or not_landed.",
			ConstLabels: prometheus.Labels{"result": "not_landed"},
		}, storage(func(s store.CountersSnapshot) int64 { return s.OutcomeNotLanded })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_hedged_requests_total",
			Help: "Storage requests sent again because an earlier attempt had not answered (or a read had stopped delivering bytes) within the hedge deadline.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.Hedged })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_hedge_wins_total",
			Help: "Hedged storage calls answered first by the later attempt.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.HedgeWins })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_stalled_calls_total",
			Help: "Storage calls (metadata requests, reads) that failed because no attempt answered within two hedge deadlines.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.HedgeGaveUp })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "plxfs_storage_circuits_open",
			Help: "Circuits open now (per bucket, one for metadata calls and one for reads): the backend failed every call of that kind for a few seconds, so such calls fail at once (EIO) while a probe retries in the background.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.CircuitsOpen })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_storage_circuit_openings_total",
			Help: "Times a circuit opened because the backend failed every call of its kind for a few seconds.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.CircuitOpenings })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_storage_failed_fast_total",
			Help: "Storage calls failed at once, without a request, because their circuit was open.",
		}, storage(func(s store.CountersSnapshot) int64 { return s.FailedFast })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "plxfs_stale_metadata_served_total",
			Help: "Lookups and stats answered from what the mount last knew because the backend did not answer the revalidation (a stall or an outage); see SEMANTICS.md.",
		}, loadFloat(&m.staleServed)),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

func loadFloat(v *atomic.Int64) func() float64 {
	return func() float64 { return float64(v.Load()) }
}

// Registry is the registry holding m's collectors; register more collectors (such as
// NewCacheCollector) there.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves m's registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Snapshot is the subset of the counters that plxfs status shows.
type Snapshot struct {
	UploadsInFlight int64
	Uploads         int64 // finished uploads, successful or not
	UploadBytes     int64 // bytes of successful uploads
	UploadFailures  int64
	OpenHandles     int64
	GCSReadBytes    int64
	CacheServed     int64
	// ChecksumMismatches counts fetched bytes that failed their CRC32C check.
	ChecksumMismatches int64
	// StaleServed counts lookups and stats answered from stale metadata (Observer.StaleServed).
	StaleServed int64
	// Storage is what store/gcs, store.WithHedging and store.WithBreaker counted.
	Storage store.CountersSnapshot
}

// Snapshot reads the counters shown by plxfs status.
func (m *Metrics) Snapshot() Snapshot {
	return Snapshot{
		UploadsInFlight: m.uploadsInFlight.Load(),
		Uploads:         m.uploads.Load(),
		UploadBytes:     m.uploadBytes.Load(),
		UploadFailures:  m.uploadFailures.Load(),
		OpenHandles:     m.openHandles.Load(),
		GCSReadBytes:    m.gcsRead.Load(),
		CacheServed:     m.cacheServed.Load(),

		ChecksumMismatches: m.checksumMismatches.Load(),
		StaleServed:        m.staleServed.Load(),
		Storage:            m.storage.Snapshot(),
	}
}

// StorageCounters is where the storage layers count their outcome checks and hedges: pass it
// as gcs.Options.Counters and store.HedgeOptions.Counters. m exports it as
// plxfs_upload_outcome_checked_total, plxfs_hedged_requests_total, plxfs_hedge_wins_total and
// plxfs_stalled_calls_total.
func (m *Metrics) StorageCounters() *store.Counters { return m.storage }

// ChecksumMismatch records fetched object bytes whose CRC32C did not match the object's
// (plxfs_checksum_mismatch_total). It is cheap and never blocks; call it once per mismatch
// found, whatever is done about it (refetch or failure).
func (m *Metrics) ChecksumMismatch() { m.checksumMismatches.Add(1) }

// Observer receives the events that only the filesystem sees. *Metrics implements it; Nop
// ignores everything. Methods must be cheap and must not block: they run on FUSE request paths.
type Observer interface {
	// UploadStarted is called when a file's upload starts (one call per file upload, not per
	// request or part).
	UploadStarted()
	// UploadFinished is called once for every UploadStarted, with the bytes the upload sent
	// and its error (nil on success).
	UploadFinished(bytes int64, err error)
	// CacheServed is called after the read cache returned n bytes for a FUSE read.
	CacheServed(n int64)
	// StaleServed is called when a lookup or stat is answered from what the mount last knew
	// because the backend did not answer its revalidation.
	StaleServed()
}

// Nop is an Observer that does nothing.
var Nop Observer = nop{}

type nop struct{}

func (nop) UploadStarted()              {}
func (nop) UploadFinished(int64, error) {}
func (nop) CacheServed(int64)           {}
func (nop) StaleServed()                {}

// UploadStarted implements Observer.
func (m *Metrics) UploadStarted() { m.uploadsInFlight.Add(1) }

// CacheServed implements Observer.
func (m *Metrics) CacheServed(n int64) { m.cacheServed.Add(n) }

// StaleServed implements Observer.
func (m *Metrics) StaleServed() { m.staleServed.Add(1) }

func (m *Metrics) handleOpened()        { m.openHandles.Add(1) }
func (m *Metrics) handleClosed()        { m.openHandles.Add(-1) }
func (m *Metrics) readFromGCS(n int64)  { m.gcsRead.Add(n) }
func (m *Metrics) writtenToGCS(n int64) { m.gcsWriteBytes.Add(float64(n)) }
func (m *Metrics) fuseRead(n int)       { m.fuseReadBytes.Add(float64(n)) }
func (m *Metrics) fuseWritten(n uint32) { m.fuseWriteBytes.Add(float64(n)) }

var _ Observer = (*Metrics)(nil)

// UploadFinished implements Observer.
func (m *Metrics) UploadFinished(bytes int64, err error) {
	m.uploadsInFlight.Add(-1)
	m.uploads.Add(1)
	if err != nil {
		m.uploadFailures.Add(1)
		return
	}
	m.uploadBytes.Add(bytes)
}

// Code classifies a storage error as the code label of plxfs_gcs_requests_total.
func Code(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, store.ErrNotExist):
		return "not_found"
	case errors.Is(err, store.ErrPrecondition):
		return "precondition"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	}
	return "error"
}

// errnoName is the errno label: "ENOENT", or the number for errnos without a name.
func errnoName(e syscall.Errno) string {
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return strconv.Itoa(int(e))
}
