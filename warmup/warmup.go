// Package warmup fills plxfs's read cache with every object under a prefix ahead of its
// readers (plxfs warmup, plxfs mount --warmup, and a daemon asked over its status socket).
//
// Objects are read through the cache (package cache) exactly as a mount reads them, from
// offset 0 to the end in ReadStep steps into one small buffer per worker, so the cache's read
// path fetches whole chunks as parallel GETs sized to the link and writes them behind to disk;
// its memory stays within the cache's read-path budget (Options.PrefetchMemory). The cache is
// keyed by bucket, object name and generation, so the objects warmed are the ones a mount of
// the same bucket reads, whatever their names look like as paths. A worker waits until its
// object is on disk (cache.WaitWrites) before it takes the next, so warming runs at the speed
// of the slower of link and disk, and never has more chunks in memory than it reads.
//
// Resumable: an object already wholly cached and checked is skipped without any I/O; one that
// is cached but not yet checked in this process is read back from the disk (which checks it,
// and refetches a unit found damaged). A prefix whose cached footprint exceeds the cache's
// bound is refused (TooBigError) unless forced: warming it would evict its own first objects.
package warmup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// ReadStep is the size of each read of an object through the cache (one buffer per worker).
const ReadStep = 1 << 20

// DefaultWorkers is how many objects are read at once by default.
const DefaultWorkers = 8

// attempts bounds how often one object is read again when it was not wholly cached after a
// read (a chunk pushed out of memory before it reached the disk, or a disk write that failed).
const attempts = 3

// List returns the objects below dir in the connection on bucket b (the whole bucket) with
// prefix connPrefix ("" or "a/b/"), with their full names, as the mount's cache keys them.
// A dir that holds nothing but names one object is that object. Directory placeholders,
// empty objects (nothing to cache) and the temporary parts of uploads are left out.
func List(ctx context.Context, b store.Bucket, connPrefix, dir string) ([]cache.Object, error) {
	dir = strings.Trim(dir, "/")
	_, files, err := transfer.List(ctx, store.WithPrefix(b, connPrefix), dir, true)
	if err != nil {
		return nil, err
	}
	under := connPrefix
	if dir != "" {
		under += dir + "/"
	}
	if len(files) == 0 && dir != "" {
		a, err := b.Stat(ctx, connPrefix+dir)
		switch {
		case errors.Is(err, store.ErrNotExist):
			return nil, nil
		case err != nil:
			return nil, err
		}
		a.Name = strings.TrimPrefix(a.Name, connPrefix)
		files, under = []store.Attrs{a}, connPrefix
	}
	out := make([]cache.Object, 0, len(files))
	for _, a := range files {
		if a.Size <= 0 || a.Generation <= 0 {
			continue
		}
		out = append(out, cache.Object{Bucket: b.Name(), Name: under + a.Name, Generation: a.Generation,
			Size: a.Size, CRC32C: a.CRC32C, HasCRC32C: a.HasCRC32C})
	}
	return out, nil
}

// Options configure Run.
type Options struct {
	// Workers is how many objects are read at once (0: DefaultWorkers); at most the cache's
	// ChunkBuffers, since more readers than chunk buffers would read around the cache.
	Workers int
	// MaxBytes is the cache's bound (cache.Options.MaxBytes): a prefix whose footprint exceeds
	// it is refused with a TooBigError unless Force.
	MaxBytes int64
	Force    bool
	// DryRun counts what would be fetched and reads nothing.
	DryRun bool
	// Progress is told of the work found, the bytes read and each object done (nil: nothing).
	Progress transfer.Progress
	Logger   *slog.Logger // nil: slog.Default()
}

// Result is what Run did (or with DryRun, would do).
type Result struct {
	// Files and Bytes are the objects read into the cache (would be, with DryRun), Skipped
	// those already cached, Failed those that could not be cached, with Failures.
	transfer.Summary
	Objects   int   // objects under the prefix
	Total     int64 // their bytes
	Footprint int64 // what they take of the cache's bound once cached
	MaxBytes  int64 // that bound
}

// Fits reports whether the objects fit the cache's bound.
func (r Result) Fits() bool { return r.Footprint <= r.MaxBytes }

// TooBigError refuses a prefix whose footprint exceeds the cache's bound.
type TooBigError struct{ Result Result }

func (e *TooBigError) Error() string {
	r := e.Result
	return fmt.Sprintf("%d objects of %d bytes take %d bytes of the cache, more than its bound of %d bytes", r.Objects, r.Total, r.Footprint, r.MaxBytes)
}

// Run reads objs into c from src (which must serve their bucket: cache keys name it). It
// returns when every object is cached, skipped or failed, or when ctx ends (then with
// ctx's error).
func Run(ctx context.Context, c *cache.Cache, src cache.Source, objs []cache.Object, opts Options) (Result, error) {
	start := time.Now()
	progress := opts.Progress
	if progress == nil {
		progress = nopProgress{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	res := Result{Objects: len(objs), MaxBytes: opts.MaxBytes}
	for _, o := range objs {
		res.Total += o.Size
		res.Footprint += c.Footprint(o)
	}
	if !res.Fits() && !opts.Force && !opts.DryRun {
		return res, &TooBigError{Result: res}
	}
	if opts.DryRun {
		for _, o := range objs {
			if whole, _ := c.Cached(o); whole {
				res.Skipped++
			} else {
				res.Files++
				res.Bytes += o.Size
			}
		}
		res.Elapsed = time.Since(start)
		return res, nil
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = DefaultWorkers
	}
	workers = max(1, min(workers, c.ChunkBuffers(), len(objs)))
	progress.Total(int64(len(objs)), res.Total)

	var mu sync.Mutex // guards res
	jobs := make(chan cache.Object)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, ReadStep)
			for o := range jobs {
				fetched, err := warmOne(ctx, c, src, o, opts.MaxBytes, buf, progress)
				ev := transfer.Event{Name: o.Name, Size: o.Size, Skipped: !fetched && err == nil, Err: err}
				mu.Lock()
				switch {
				case err != nil:
					res.Failed++
					res.Failures = append(res.Failures, transfer.Failure{Name: o.Name, Err: err})
				case ev.Skipped:
					res.Skipped++
				default:
					res.Files++
					res.Bytes += o.Size
				}
				mu.Unlock()
				if err != nil && ctx.Err() == nil {
					log.Warn("warmup: object not cached", "bucket", o.Bucket, "name", o.Name, "err", err)
				}
				progress.Done(ev)
			}
		}()
	}
feed:
	for _, o := range objs {
		select {
		case jobs <- o:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	res.Elapsed = time.Since(start)
	return res, ctx.Err()
}

// warmOne reads o through c until it is wholly cached, and reports whether any of it had to
// be fetched (false: it was cached already, and is checked now).
func warmOne(ctx context.Context, c *cache.Cache, src cache.Source, o cache.Object, maxBytes int64, buf []byte, progress transfer.Progress) (fetched bool, err error) {
	whole, checked := c.Cached(o)
	if whole && checked {
		return false, nil
	}
	if fp := c.Footprint(o); fp > maxBytes {
		return false, fmt.Errorf("larger than the cache: takes %d bytes of it, more than its bound of %d bytes", fp, maxBytes)
	}
	fetched = !whole
	for attempt := 1; ; attempt++ {
		if err := readThrough(ctx, c, src, o, buf, progress, fetched && attempt == 1); err != nil {
			return fetched, err
		}
		if err := c.WaitWrites(ctx, o); err != nil {
			return fetched, err
		}
		if whole, _ := c.Cached(o); whole {
			return fetched, nil
		}
		if attempt == attempts {
			return fetched, fmt.Errorf("not cached after %d reads: its chunks did not reach the disk (disk full, or the read path's memory too small for the readers; see the cache's write skips and errors)", attempts)
		}
		fetched = true
	}
}

// readThrough reads o from start to end through c; with report, each step is counted as
// progress.
func readThrough(ctx context.Context, c *cache.Cache, src cache.Source, o cache.Object, buf []byte, progress transfer.Progress, report bool) error {
	defer c.StopPrefetch(o)
	for off := int64(0); off < o.Size; {
		n, err := c.ReadAt(ctx, src, o, buf, off)
		if report && n > 0 {
			progress.Bytes(int64(n))
		}
		off += int64(n)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	return nil
}

type nopProgress struct{}

func (nopProgress) Total(int64, int64)    {}
func (nopProgress) Bytes(int64)           {}
func (nopProgress) Done(transfer.Event)   {}
func (nopProgress) Composing(string, int) {}
