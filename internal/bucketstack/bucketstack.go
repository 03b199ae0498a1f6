// Package bucketstack builds the one stack of store.Bucket decorators that plxfs puts between
// a storage client's bucket and its callers, so that `plxfs mount` (and demo, which runs it),
// every CSI volume and the storage commands get the same bounds on a backend in trouble:
//
//		caller → breaker → metrics → timeout → hedging → client (store/gcs)
//
//	  - store.WithHedging (innermost, on the client's bucket): a metadata call or read that has
//	    not answered within its adaptive deadline is sent again; when neither answers, the call
//	    fails after two deadlines (2 s with the defaults on a healthy backend).
//	  - store.WithTimeout: the outer bound of every quick call (--op-timeout).
//	  - metrics.Bucket: every request that goes to the backend, counted and timed.
//	  - store.WithBreaker (outermost): once a kind of call has failed for a few seconds, calls of
//	    that kind fail at once while a probe retries in the background. Calls it fails never
//	    reach the backend, so they are not counted as requests (Metrics counts them apart).
//
// Options' zero value is a mount's stack; the storage commands turn off what a long transfer
// must not have (the per-call timeout, hedged reads: package transfer resumes its own reads),
// what would hide their errors (hedged metadata calls gave up with "timed out" while the client
// was still retrying a refused connection) and what a one-shot command does not need (the
// breaker).
package bucketstack

import (
	"log/slog"
	"time"

	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
)

// Defaults of Options' zero values.
const (
	DefaultOpTimeout  = 30 * time.Second
	DefaultHedgeFloor = time.Second
)

// Options select the layers of the stack. The zero value is the stack of a mount.
type Options struct {
	// OpTimeout bounds each quick call (store.WithTimeout): 0 is DefaultOpTimeout; < 0, none
	// (a download by a storage command may take as long as it needs).
	OpTimeout time.Duration
	// HedgeFloor is store.HedgeOptions.Floor: 0 is DefaultHedgeFloor; < 0 turns hedging off.
	HedgeFloor time.Duration
	// NoBreaker leaves store.WithBreaker out.
	NoBreaker bool
	// Metrics, when set, counts the requests (metrics.Bucket), hedges and circuits; nil counts
	// nothing. The storage client should count into Metrics.StorageCounters too.
	Metrics *metrics.Metrics
	// Logger receives the breaker's lines (a circuit opened or closed). Nil: slog.Default().
	Logger *slog.Logger
}

// OpTimeoutOrDefault is the per-call bound o sets (0: none).
func (o Options) OpTimeoutOrDefault() time.Duration {
	switch {
	case o.OpTimeout == 0:
		return DefaultOpTimeout
	case o.OpTimeout < 0:
		return 0
	}
	return o.OpTimeout
}

// Wrap returns b (a storage client's bucket) with the stack o selects.
func Wrap(b store.Bucket, o Options) store.Bucket {
	var counters *store.Counters
	if o.Metrics != nil {
		counters = o.Metrics.StorageCounters()
	}
	floor := o.HedgeFloor
	if floor == 0 {
		floor = DefaultHedgeFloor
	}
	if floor > 0 {
		// Inside the timeout: hedges bound each call to two adaptive deadlines, and the
		// timeout stays the outer bound of every call.
		b = store.WithHedging(b, store.HedgeOptions{Floor: floor, Counters: counters})
	}
	b = store.WithTimeout(b, o.OpTimeoutOrDefault())
	if o.Metrics != nil {
		b = metrics.Bucket(b, o.Metrics)
	}
	if !o.NoBreaker {
		log := o.Logger
		if log == nil {
			log = slog.Default()
		}
		b = store.WithBreaker(b, store.BreakerOptions{Counters: counters, Logger: log})
	}
	return b
}
