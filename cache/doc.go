// Package cache is plxfs's read cache: a chunked, size-bounded LRU cache of object bytes on
// local disk, keyed by object generation.
//
// # Idea
//
// An object generation is cut into fixed-size chunks (Options.ChunkSize, 8 MiB by default). A
// read (Cache.ReadAt) is served from the chunk files that cover it; a chunk that is not on disk
// is fetched from a Source with one ranged read, written to its own file, and indexed in an LRU
// bounded by bytes (Options.MaxBytes). Every key includes the object generation: once a
// caller hands in a newer generation, nothing cached for an older one can be served for it. The package knows nothing of FUSE, errno or the GCS SDK: a Source is any
// type with NewRangeReader (store.Bucket is one).
//
//   - One fetch per chunk. Concurrent readers of a missing chunk share one fetch
//     (x/sync/singleflight keyed by chunk). The fetch runs on a context detached from the
//     reader that started it (context.WithoutCancel, bounded by FetchTimeout, cancelled by
//     Close): go-fuse cancels a request's context on any interrupt, SIGURG included, and one
//     reader giving up must not fail the others. Each waiter selects on its own ctx.Done();
//     all waiters get the fetch's error, and nobody refetches on their behalf.
//   - Exact lengths. A fetch must deliver exactly min(unit, Size-off) bytes. A short body is
//     an error (ErrShortBody); a longer one (ErrLongBody) is what a decompressive-transcoding
//     (Content-Encoding: gzip) object returns for a ranged read when the client did not ask for
//     stored bytes. Neither is ever cached. store/gcs asks for stored bytes, so gzip objects
//     cache and read as their compressed bytes, consistent with their size.
//   - Sequential readahead. Reads are matched against up to 8 "streams" per object generation
//     (where each reader's last read ended, ±1 MiB, or ±ChunkSize/4 for small chunks). A read
//     that continues a stream, or starts at offset 0, is served by whole chunks; once a stream
//     is established (started at 0, or continued twice) the next Readahead chunks are fetched
//     in the background. Background fetches are bounded globally by a semaphore of
//     max(2×Readahead, 2); when it is full readahead is skipped, not queued.
//   - Random reads (see Decisions) are served by 256 KiB blocks, cached like chunks under
//     their own keys, until a region proves hot.
//   - Write-through. Cache.Fill stores the chunks of a generation plxfs just uploaded from the
//     local copy, so reading it back needs no fetch.
//
// # On-disk format
//
//	Dir/lock                              flock'ed by the owning process; holds its pid
//	Dir/v1/<hh>/<id>.<fill>               one chunk file
//	Dir/v1/<hh>/tmp-*                     a chunk file being written (removed at Open)
//
// id is the hex SHA-256 of the key {bucket, name, generation, unit, index} (length-prefixed
// strings, so no two keys collide), hh its first two hex digits, and fill a counter in hex
// (continuing after the highest found at Open) that makes every fill's path unique. unit is the unit size in bytes
// (ChunkSize, or the 256 KiB block size of random reads): chunks written under another
// ChunkSize never alias, and are dropped at Open. Each file starts with a header (layout in
// format.go): magic "PLXCHUNK", format version, header length, generation, unit, index, data
// length, CRC32C of the data, bucket and name, and a CRC32C of the header itself, followed by
// the data. A new format or naming scheme gets a new directory (v2), so an old plxfs and a new
// one never misread each other's files.
//
// A chunk file is written under a temp name, its header written last (with the data CRC), and
// then renamed to its final name. A crash leaves either a temp file (removed at Open) or a
// complete file. Nothing is fsync'ed: after a power loss a renamed file can still come back
// short or with garbage, which the checks below catch.
//
// # Restart and damage
//
// Open re-indexes Dir/v1: every chunk file's header is decoded and checked (magic, version,
// header CRC, key matching the file name, unit in use) and its length must equal header length
// plus data length; failures are removed. Recency is approximated by modification time (fill
// time). The data CRC of a re-indexed file is verified once, on its first read (shared by
// concurrent readers), not at Open: a 10 GiB cache would otherwise delay every daemon start by
// reading 10 GiB. While running, every read checks the file's length against its header (a
// truncated file is a miss: dropped and refetched), and a file that vanished (ENOENT) is a
// miss. A corrupted data byte in a file written by this process is not detected (it would mean
// checksumming whole chunks on every 4 KiB read); after a restart it is.
//
// # Space accounting
//
// Each chunk file is accounted at its size rounded up to 4 KiB. A fill reserves its space
// (evicting least recently used chunks) before writing, so indexed files plus files being
// written stay within MaxBytes, except when more fetches are in flight than fit at once. A unit
// that could never fit (MaxBytes below one chunk) is read directly from the Source, uncached.
// The LRU's entry bound is MaxBytes/4 KiB + 1, which never binds before the byte bound.
//
// # Locks
//
// Lock order: acquire left before right, never the reverse.
//
//	Cache.mu → semaphore's internal lock (TryAcquire only, never blocking)
//	Cache.seqMu (never held with Cache.mu)
//
// Cache.mu guards the LRU, the byte counters, the busy set and the list of files to remove; it
// is never held across network or chunk-file I/O. Files unindexed under the lock (evicted,
// replaced, damaged) are removed after unlocking. The LRU's removal callback runs under
// Cache.mu and does not call back into the LRU. singleflight's lock is never held while our
// code runs (fill and verify run outside it), and neither mutex is held while calling into it.
//
// Eviction racing a refill of the same chunk is harmless: an LRU value carries the exact path of
// its fill, a removal only ever deletes that path, and a reader that finds its path gone
// (ENOENT) treats it as a miss and looks again (up to 3 times, then reads the range directly).
// A fill re-checks the LRU inside its singleflight call, because singleflight forgets a key as
// soon as its call returns: a reader that missed just before a fill completed must not fetch
// the chunk a second time.
//
// # Decisions
//
// Random reads. A non-sequential read of a cold chunk is served by the 256 KiB blocks it
// touches (fetched in parallel, cached under block keys), unless the chunk or the chunk before
// it is cached or being fetched (then the reader most likely continues a sequential reader the
// stream table lost track of). Once 2 blocks of a chunk are cached or arriving, a further
// random miss there also fetches the whole chunk in the background. Figures from
// BenchmarkRandomRead4KiB (cache_bench_test.go; medians of 3 runs of 20 iterations on this
// 2-core machine, shared with other work; 8 MiB chunks):
//
//	4 KiB read of a cold chunk of a large object ("sparse"), latency per read:
//	                          whole chunk   blocks only   adaptive (chosen)
//	  simulated GCS (30 ms, 150 MiB/s/stream)   84.6 ms      33.4 ms       33.3 ms
//	  simulated loopback (0.3 ms, 1.5 GiB/s)     8.4 ms       1.8 ms        1.8 ms
//	  fake-gcs-server via store/gcs             13.0 ms       1.1 ms        0.9 ms
//	  bytes fetched per read                    8192 KiB      269 KiB       269 KiB
//
//	512 reads of 4 KiB by 8 readers over a cold 32 MiB object ("hot"), total time:
//	  simulated GCS                            125.6 ms     164.1 ms      142.7 ms
//	  simulated loopback                        25.5 ms      29.9 ms       30.5 ms
//	  fake-gcs-server via store/gcs             49.9 ms      56.4 ms       52.5 ms
//	  bytes fetched                             32 MiB        34 MiB        34 MiB
//
// Fetching whole chunks makes every cold random read pay for 8 MiB: 2.5× slower against GCS
// and 5–14× on loopback, with 30× the traffic. Blocks only lose when readers keep returning to
// a small region, and escalation caps that loss at about 14% (GCS model) instead of 31%. So:
// adaptive. 256 KiB is one request whose transfer time (1.7 ms at 150 MiB/s) is small next to
// GCS's first-byte latency, and it covers the kernel's default 128 KiB readahead.
//
// Readahead default 4 (Options.Readahead 0 means the default; negative disables it). Against
// fake-gcs-server, BenchmarkSequentialRead (256 MiB, 1 MiB reads, cold) ran at about 450–700 MB/s
// with readahead off, 500–650 MB/s at 4 and 770–1030 MB/s at 8, against 1170–1360 MB/s for one
// uncached ranged GET of the whole object, and 5.5–10 GB/s warm. All of it shares 2 cores with
// the emulator and other work, so these are rough; the mount's benchmark decides.
//
// Keys include the unit size. A daemon restarted with another ChunkSize must not read an old
// 4 MiB chunk 3 as the new 8 MiB chunk 3; old chunks are dropped at Open.
//
// Fill stores at most MaxBytes/2 of one object (its first chunks), so one large upload cannot
// flush the whole cache.
package cache
