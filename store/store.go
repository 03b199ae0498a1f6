// Package store is plxfs's only view of object storage: a small, generation-aware
// Bucket interface, the errors that cross it, and decorators that compose over it
// (WithPrefix; WithTimeout and WithHedging, which bound the latency of calls made for file
// operations). Counters is where the storage layers count what they do to keep answers
// honest (upload outcome checks, hedges). The Google Cloud Storage implementation lives in
// store/gcs, the only package that imports cloud.google.com/go/storage.
//
// Contract for every Bucket implementation:
//   - All methods are safe for concurrent use and honour ctx for cancellation and deadlines.
//   - Errors wrap ErrNotExist when the object (or the bucket) does not exist, ErrPrecondition
//     when a generation precondition failed, and ErrPermission when the server refused the
//     credentials or the request; anything else is an I/O error.
//   - Names are GCS object names ("a/b/c.txt"), never local paths. Converting between the two
//     is connspec's job.
//   - Every write is conditional: IfGen 0 means "the object must not exist", IfGen > 0 means
//     "the live generation must be IfGen". There is no unconditional write, so retries of a
//     write are always safe and a concurrent writer is never clobbered silently.
package store

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotExist is wrapped by errors for objects or buckets that do not exist.
var ErrNotExist = errors.New("object does not exist")

// ErrPrecondition is wrapped by errors for a failed generation precondition: the object
// changed (or appeared) since the caller last saw it.
var ErrPrecondition = errors.New("object generation changed (precondition failed)")

// ErrPermission is wrapped by errors for a request the server refused for lack of permission:
// the credentials are not allowed to do this (GCS 403), or were not accepted at all (401:
// missing, expired or revoked; the client refreshes tokens itself, so a 401 that reaches
// plxfs is not transient). Retrying does not help; granting access does.
var ErrPermission = errors.New("permission denied")

// Attrs describes one object generation.
type Attrs struct {
	Name            string
	Size            int64
	Generation      int64
	Metageneration  int64
	Updated         time.Time // last modification time recorded by the server
	CRC32C          uint32
	HasCRC32C       bool
	MD5             []byte
	ContentType     string
	ContentEncoding string            // "gzip" for objects stored compressed
	Metadata        map[string]string // user metadata (plxfs keeps mtime and symlink targets here)
}

// Page is one page of a listing.
type Page struct {
	Objects       []Attrs  // objects whose names start with the prefix (see ListOptions.IncludeTrailingDelimiter), sorted by name
	Prefixes      []string // with a delimiter: the common prefixes, each ending in the delimiter, sorted
	NextPageToken string   // "" on the last page
}

// ListOptions selects what List returns.
type ListOptions struct {
	Prefix    string
	Delimiter string // "/" for one directory level; "" for everything below Prefix
	PageToken string
	PageSize  int // 0: the server's default (1,000 on GCS)
	// IncludeTrailingDelimiter (GCS's includeTrailingDelimiter; only with a Delimiter) also
	// returns, in Objects and with all their attributes, the objects whose name is one of the
	// page's common prefixes: those ending in exactly one Delimiter after Prefix, such as a
	// directory placeholder "p/d/" under Prefix "p/". The prefix itself is still returned in
	// Prefixes. So a directory listing carries its subdirectories' placeholder metadata, and a
	// prefix without such an object is known to have none. Such an object may come again on a
	// later page (fake-gcs-server v1.56.1 repeats it on every page): callers dedupe by name.
	IncludeTrailingDelimiter bool
}

// WriteOptions describe a new object generation.
type WriteOptions struct {
	// IfGen is the precondition: 0, the object must not exist; > 0, its live generation must be IfGen.
	IfGen       int64
	ContentType string
	Metadata    map[string]string
	// CRC32C, when HasCRC32C is set, is the Castagnoli checksum of the whole content; the
	// server refuses the object if the bytes it received do not match.
	CRC32C    uint32
	HasCRC32C bool
	// ChunkSize is the resumable-upload chunk size in bytes (0: the implementation's default).
	// Each chunk is buffered in memory, so this bounds a writer's memory.
	ChunkSize int
}

// Writer streams one new object generation. Nothing is visible in the bucket until Commit
// returns successfully; Abort (or a failed Commit) leaves no object behind.
type Writer interface {
	io.Writer
	// Commit finishes the upload and returns the new object's attributes.
	Commit() (Attrs, error)
	// Abort cancels the upload. It is safe to call after Commit (then it does nothing).
	Abort()
}

// Bucket is one GCS bucket (or a prefix of one, see WithPrefix).
type Bucket interface {
	// Name is the bucket's name, for logs and cache keys.
	Name() string
	// Stat returns the live generation's attributes.
	Stat(ctx context.Context, name string) (Attrs, error)
	// List returns one page of objects (and, with a delimiter, common prefixes) under opts.Prefix.
	List(ctx context.Context, opts ListOptions) (Page, error)
	// NewRangeReader reads n bytes from offset off of generation gen (n < 0: to the end; gen 0:
	// the live generation). The bytes are the object's stored bytes: objects with
	// Content-Encoding gzip are not decompressed, so ranges, sizes and checksums agree.
	// If gen is no longer the live generation, the error wraps ErrNotExist or ErrPrecondition.
	NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error)
	// NewWriter starts a (resumable, chunked) upload of a new generation of name.
	NewWriter(ctx context.Context, name string, opts WriteOptions) (Writer, error)
	// Compose concatenates up to 32 source objects (live generations) into dst.
	Compose(ctx context.Context, dst string, srcs []string, opts WriteOptions) (Attrs, error)
	// Copy copies generation srcGen of src (0: live) to dst under the precondition opts.IfGen.
	// opts.Metadata, when non-nil, replaces the copy's metadata.
	Copy(ctx context.Context, src string, srcGen int64, dst string, opts WriteOptions) (Attrs, error)
	// Delete removes generation gen of name (0: the live generation). Deleting an object that
	// does not exist returns an error wrapping ErrNotExist.
	Delete(ctx context.Context, name string, gen int64) error
	// UpdateMetadata merges md into the live generation's user metadata (a "" value removes a key).
	UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (Attrs, error)
}
