// Package gcs implements store.Bucket over Google Cloud Storage with
// cloud.google.com/go/storage. It is the only plxfs package that imports that client.
//
// # What it does
//
//   - Every write (NewWriter, Compose, Copy) carries a generation precondition: IfGen 0 becomes
//     ifGenerationMatch=0 (DoesNotExist), IfGen > 0 becomes ifGenerationMatch=IfGen. Because of
//     that the client's own retry (RetryIdempotent) retries writes; plxfs has no retry loops of
//     its own. Retries use exponential backoff with full jitter (gax.Backoff), at most
//     Options.MaxAttempts attempts and Options.RetryDeadline per call.
//   - Upload requests (session start, single-request uploads, chunks) are retried by the API
//     layer under the storage client, which ignores MaxAttempts and, outside chunks, any
//     deadline: a refused upload would retry until its context ends. Each writer therefore
//     installs its own retry predicate (retryBudget): at most MaxAttempts consecutive failures,
//     lasting at most RetryDeadline; a successful request ends the streak.
//   - An empty WriteOptions.ContentType becomes application/octet-stream (GCS's default). The
//     client cannot re-send a resumable session's first request when the content type is
//     empty, so that request would not be retried.
//   - Commit checks the bytes: with HasCRC32C it compares the CRC32C of the bytes written
//     with the declared one and cancels the upload (nothing is created) on a mismatch; after
//     the upload it compares the server's size and CRC32C with what was written and, on a
//     mismatch, deletes that generation and fails. Either way no wrong object is left behind.
//     (If the upload was an overwrite, the replaced generation is gone by then.)
//   - Unknown outcomes: an upload's outcome is what GCS has, not what the last request said.
//     When the final request of a write (a single-request upload, a resumable session's final
//     chunk, a compose) fails in a way that leaves open whether GCS acted (a connection reset,
//     a timeout, a 5xx, or any error after a retry, because an earlier attempt whose response
//     was lost may have landed and its retry then meets the write's own result: 412, or 404
//     for a finalised resumable session), Commit and Compose Stat the
//     object. The write succeeded, and its Attrs are returned, when the live object is a
//     generation other than IfGen (with IfGen 0: it exists) holding exactly the bytes written
//     (size and CRC32C; for Compose the declared CRC32C, so a Compose without one is not
//     checked). Otherwise the original error stands: a 412 stays ErrPrecondition, a 404 of a
//     retried upload is an I/O error ("upload session lost"), never ErrNotExist. Only a
//     definitive 4xx answer to a write's only attempt skips the check, and so does a caller
//     whose context has ended: it gave up waiting (an abandoned upload at shutdown must not
//     wait for a Stat of a backend that may be down). Each check is counted in
//     Options.Counters (landed or not).
//   - UpdateMetadata merges keys, which is idempotent, so it is retried too (RetryAlways for
//     that call only). Delete of a specific generation is retried; Delete of the live
//     generation (gen 0) is not, since a retry after a lost response would report ErrNotExist.
//   - Reads use ReadCompressed(true): a Content-Encoding: gzip object is returned as its stored
//     (compressed) bytes, so offsets, sizes and checksums agree with Attrs. Reads pin the
//     generation when one is given, and the reader's generation is checked against it.
//     A read at or past the end returns an empty reader (the server's 416), like pread.
//   - Errors: not-found (object or bucket) wraps store.ErrNotExist, HTTP 412 wraps
//     store.ErrPrecondition, and all errors name the operation and gs://bucket/object.
//   - Metadata keys whose value is "" are dropped from Attrs: plxfs uses "" to mean "removed".
//
// # Endpoints
//
// Options.Endpoint "" means real GCS (or $STORAGE_EMULATOR_HOST, which the client honours by
// itself). An Endpoint such as http://127.0.0.1:PORT means an emulator: no credentials, JSON API
// at Endpoint/storage/v1/. Reads stay on the XML API (GET Endpoint/<bucket>/<object>), the
// client's default on real GCS too: the JSON read path refuses ReadCompressed ("custom
// Accept-Encoding headers not allowed"). fake-gcs-server serves XML reads only when its public
// host equals the host the client calls; internal/emulator sets it so. An external
// fake-gcs-server must be started with -public-host 127.0.0.1:PORT for the same reason.
//
// # fake-gcs-server v1.56.1, as checked against this package (see EMULATOR.md)
//
//   - Generation reads: honoured on both backends. Reading a generation that is not live fails
//     with 404 (store.ErrNotExist); the reader-generation check is a second line of defence.
//   - gzip: with Accept-Encoding: gzip (ReadCompressed) the stored bytes are served, ranges
//     included; without it the emulator decompresses the whole object and ignores the range.
//   - Upload preconditions (DoesNotExist, GenerationMatch) are enforced on simple, multipart and
//     resumable uploads (resumable: checked at finalisation). A declared CRC32C is checked and a
//     mismatch refused with 400.
//   - Preconditions on compose, copy (rewrite), delete and metadata update are ignored; tests
//     must not depend on them (GCS enforces them).
//   - Compose of a missing source answers 500, not 404, so it is retried and then surfaces as
//     an I/O error, not store.ErrNotExist. Composing onto an existing destination keeps that
//     destination's content type and metadata.
//   - Copy with metadata: a non-empty Metadata map replaces the copy's metadata; an empty or
//     nil map keeps the source's.
//   - Metadata update: keys are merged; a key set to "" is stored with value "" rather than
//     removed (hidden by the rule above); the response omits the metageneration. The
//     filesystem backend rewrites the object under a NEW generation (memory and GCS keep it):
//     always use the Attrs UpdateMetadata returns.
//   - A resumable upload's declared CRC32C is forgotten after its first chunk, so a wrong
//     CRC32C on a multi-chunk upload is accepted; Commit's own check (above) refuses it.
//   - Listing with a delimiter and a page size returns every prefix on every page (GCS bounds
//     objects and prefixes together); objects are paginated correctly.
//   - JSON-API reads refuse ReadCompressed in the client itself, hence XML reads (above).
//   - Placeholder objects ("dir/"): kept by the memory backend; the filesystem backend only
//     makes a host directory. The filesystem backend also cannot hold both "a" and "a/b".
//   - Resumable uploads append every chunk received, even a re-sent one: a chunk retried after
//     the server processed it (a reset after the request was forwarded) makes the object
//     longer than on GCS. Fault tests on uploads therefore inject failures before the request
//     reaches the emulator (429/5xx answered by the proxy).
package gcs
