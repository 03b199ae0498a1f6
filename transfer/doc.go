// Package transfer moves bytes between local files and a store.Bucket, safely and fast. It is
// the engine of plxfs's storage commands (ls, rm, upload, download), of the artifacts
// initializer, and of the mount's uploads.
//
// # Single objects
//
// Upload writes one object from an io.ReaderAt. It computes the CRC32C of the content first
// and sends it, so the server refuses bytes that do not match, and it checks the resulting
// object's size and CRC32C again (a mismatch deletes the bad generation and fails). Below
// Options.ComposeThreshold the object is one chunked resumable upload; above it, the content
// is uploaded as parallel parts under TempDir/<Owner>-<random>/ and assembled with compose,
// 32 sources per request and nested for more (at most 1,024 components: parts grow for huge
// objects). Part CRCs are combined arithmetically (internal/crc32c), so no second pass over the
// data is needed to know the whole object's CRC32C. Temporary parts are deleted on success,
// on failure and on cancellation (on a context detached from the caller's); CleanupParts
// removes what a killed process left. Only the final write carries the caller's
// precondition, so the object either appears whole under its precondition or not at all.
//
// PartWriter is the same composed upload for content that is still being written in order
// (the mount's big files): it is told of every write, uploads each part as soon as it is
// complete, and its Commit only uploads the tail and composes; the parts, compose tree, checks
// and cleanup are Upload's own.
//
// Download fetches one generation (pinned, so parts can never mix two generations) into a
// temporary file next to the destination, verifies CRC32C (or MD5, or at least the size),
// fsyncs and renames. Objects bigger than PartSize are fetched as parallel ranged parts
// written in place with WriteAt; a broken or short stream is resumed at the offset where it
// stopped. A server that ignores ranges, or ranged bytes that fail the whole-object check,
// make the download fall back to one stream.
//
// # Gzip-encoded objects
//
// A store.Bucket returns an object's stored bytes: for Content-Encoding gzip, compressed.
// Downloads decompress them by default, as GCS's decompressive transcoding (and therefore
// Polyaxon's client) does, while checking the stored bytes' CRC32C; such objects are read in
// one stream since ranges of a gzip stream cannot be decompressed independently. Options.Raw
// keeps the stored bytes instead. Since the decompressed size is unknown, an existing local
// copy of a gzip object counts as unchanged when its mtime is the one a download gives it.
//
// # Trees
//
// List, UploadTree, DownloadTree and RemoveTree work on "directories": everything strictly
// under "dir/" (never "dir2/..." nor "dir.csv"). Local paths are made only through connspec
// (NameToPath, PathToName) and every local write goes through os.Root, so an object name can
// never lead a write outside the target directory, not even through a symlink. Per-file
// outcomes go to Options.Progress and into a Summary; only whole-operation failures (listing,
// the local root, cancellation) are returned as errors.
//
// # Concurrency and memory
//
// Options.Workers bounds the requests moving bytes at once, across all files and parts of
// one call (a weighted semaphore shared by the call). Each upload request buffers at most one
// chunk in the store client (ChunkSize, or the content plus less than 256 KiB when that is
// smaller), and downloads copy through a 64 KiB buffer per request, so memory is about
// Workers × ChunkSize whatever the sizes. No goroutine holds a slot while waiting for
// another, so the shared semaphore cannot deadlock.
//
// # Retries
//
// Retries of individual requests (429, 5xx, resets) are the store client's job; every write
// has a precondition, which makes them safe. This package adds only what the client cannot
// do: resuming a read that broke mid-stream at its current offset, and restarting an upload
// part from its start under a new part name (so its "does not exist" precondition holds),
// each at most 3 attempts without progress.
//
// # Decisions
//   - An existing destination identical to the source (size and CRC32C) is skipped, so
//     re-running resumes; a different one is a failure unless SkipUnchanged (replace changed
//     ones) or Force (replace all) is set. Nothing is ever overwritten silently.
//   - Object "a" next to objects under "a/": the directory wins locally and "a" is refused.
//   - Uploads record the file's mtime in MtimeKey (gsutil's key); downloads restore it.
//   - TempDir at the root of a bucket view is hidden from List and DownloadTree.
//   - A download interrupted by SIGKILL may leave ".<name>.plxfs-<random>.tmp" next to its
//     destination; never a partial file under the final name.
package transfer
