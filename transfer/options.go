package transfer

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"golang.org/x/sync/semaphore"
)

// Defaults for the zero values of Options. Memory is bounded by Workers × (ChunkSize + 256
// KiB) for uploads (each upload in flight buffers one chunk in the store client) and by
// Workers × a 64 KiB copy buffer for downloads, whatever the sizes of the files: with the
// defaults 18 MiB of upload buffers.
const (
	DefaultWorkers          = 8
	DefaultPartSize         = 16 << 20 // parallel ranged reads and compose parts
	DefaultComposeThreshold = 64 << 20 // uploads of at least this size use parts + compose
	// DefaultChunkSize is the resumable-upload chunk, the memory each upload request in flight
	// holds: 8 workers × 4.25 MiB keeps a default upload near 35 MiB of buffers. (The Go
	// client's own default, 16 MiB, made 8 workers hold 130 MiB plus as much again awaiting
	// the garbage collector.) A 16 MiB part is then four requests of one resumable session.
	DefaultChunkSize  = 4 << 20
	maxComposeSources = 32 // GCS's limit per compose request
	maxAttempts       = 3  // restarts of one part after the store's own retries
	cleanupTimeout    = 2 * time.Minute
)

// TempDir is the top-level folder (relative to the bucket view) that holds the parts of
// uploads in progress: TempDir/<owner>-<random>/part-NNNNN. Tree operations never descend
// into it from the root, and CleanupParts removes leftovers.
const TempDir = ".plxfs-tmp"

// ErrAborted is returned when Options.Confirm declined the operation.
var ErrAborted = errors.New("aborted: not confirmed")

// Options tune transfers. The zero value is usable: defaults are documented per field.
type Options struct {
	// Workers bounds the requests moving bytes at once, over all files and parts (0: 8).
	Workers int
	// PartSize is the size of a ranged download part and of an upload part (0: 16 MiB).
	PartSize int64
	// ComposeThreshold: objects at least this big are uploaded as parallel parts assembled
	// with compose (0: 64 MiB; < 0: never).
	ComposeThreshold int64
	// ChunkSize is the resumable-upload chunk size (0: 2 MiB); each upload in flight
	// buffers one chunk. Content (a file, or a part) smaller than ChunkSize + 256 KiB goes
	// in one request with a chunk just bigger than itself.
	ChunkSize int
	// Owner names the temporary parts of this process's uploads (0: "plxfs"), so that
	// CleanupParts can find them after a crash. Use something stable per host or job.
	Owner string

	// Progress receives totals, bytes, the compose step of composed uploads and per-file
	// outcomes; nil: none.
	Progress Progress
	// Logger receives debug lines; nil: none. Failures are returned, not logged.
	Logger *slog.Logger

	// Force replaces existing destination files/objects without comparing them.
	Force bool
	// SkipUnchanged compares an existing destination by size and CRC32C: identical ones are
	// skipped, different ones replaced. Without Force or SkipUnchanged, an identical
	// destination is skipped and a different one is a failure ("exists").
	SkipUnchanged bool
	// Exclude lists path.Match globs; a file is left out when a glob matches its path
	// relative to the tree root, its base name, or one of its parent directories (by
	// relative path or base name).
	Exclude []string
	// Since, when non-zero, keeps only files modified after it (Polyaxon's last_time):
	// local mtime for uploads, the object's Updated time for downloads.
	Since time.Time
	// DryRun reports what would be done (through Progress.Done with Event.DryRun) and does
	// nothing.
	DryRun bool
	// Raw keeps the stored bytes of objects with Content-Encoding gzip; by default
	// downloads decompress them, as GCS's decompressive transcoding and Polyaxon do.
	Raw bool
	// Confirm, when set, is called by tree operations once the work is known, before any
	// change; returning false stops with ErrAborted.
	Confirm func(files, bytes int64) bool

	// Slots, when set, bounds the requests moving bytes at once across every call given the
	// same Slots (a filesystem's uploads, say); Workers then only sizes cleanups. nil: each
	// call bounds its own requests by Workers.
	Slots *semaphore.Weighted

	// slots bounds the requests in flight across a tree operation (see Workers).
	slots *semaphore.Weighted
}

func (o Options) withDefaults() Options {
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers
	}
	if o.PartSize <= 0 {
		o.PartSize = DefaultPartSize
	}
	if o.ComposeThreshold == 0 {
		o.ComposeThreshold = DefaultComposeThreshold
	}
	if o.ChunkSize <= 0 {
		o.ChunkSize = DefaultChunkSize
	}
	if o.Owner == "" {
		o.Owner = "plxfs"
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.slots == nil {
		o.slots = o.Slots
	}
	if o.slots == nil {
		o.slots = semaphore.NewWeighted(int64(o.Workers))
	}
	return o
}

// acquire takes one transfer slot; release with o.slots.Release(1).
func (o Options) acquire(ctx context.Context) error { return o.slots.Acquire(ctx, 1) }

// Progress observes transfers. Methods are called from many goroutines at once.
type Progress interface {
	// Total announces work found (files and bytes); tree operations call it once after
	// listing, single-object operations with files = 1.
	Total(files, bytes int64)
	// Bytes reports n more bytes moved.
	Bytes(n int64)
	// Composing reports that every part of the composed upload of the object name has been
	// uploaded (and its bytes reported) and that the parts are being joined by compose
	// requests, a step that moves no bytes; Done follows.
	Composing(name string, parts int)
	// Done reports the outcome of one file or object.
	Done(ev Event)
}

// Event is the outcome of one file or object.
type Event struct {
	Name    string // object name, or local path for local-side failures
	Size    int64
	Skipped bool  // identical destination left alone, or filtered out
	DryRun  bool  // would have been transferred or deleted
	Err     error // non-nil: failed
}

type nopProgress struct{}

func (nopProgress) Total(int64, int64)    {}
func (nopProgress) Bytes(int64)           {}
func (nopProgress) Composing(string, int) {}
func (nopProgress) Done(Event)            {}

// Summary tells what a tree operation did.
type Summary struct {
	Files    int64 // files transferred, or objects deleted
	Bytes    int64 // bytes transferred
	Skipped  int   // left alone (identical or filtered)
	Failed   int
	Failures []Failure
	Elapsed  time.Duration
}

// Failure is one file or object that could not be handled.
type Failure struct {
	Name string
	Err  error
}
