// Package cache is plxfs's read cache: a chunked, size-bounded LRU cache of object bytes on
// local disk, keyed by object generation.
//
// # Idea
//
// An object generation is cut into fixed-size chunks (Options.ChunkSize, 8 MiB by default). A
// read (Cache.ReadAt) is served from the cached units that cover it; a unit that is not on disk
// is fetched from a Source with one ranged read, written into the object's data file at its own
// offset, and indexed in an LRU bounded by bytes (Options.MaxBytes). Every key includes the
// object generation: once a caller hands in a newer generation, nothing cached for an older one
// can be served for it. The package knows nothing of FUSE, errno or the GCS SDK: a Source is any
// type with NewRangeReader (store.Bucket is one).
//
//   - One fetch per chunk. Concurrent readers of a missing chunk share one fetch
//     (x/sync/singleflight keyed by unit). The fetch runs on a context detached from the
//     reader that started it (context.WithoutCancel, bounded by FetchTimeout, cancelled by
//     Close): go-fuse cancels a request's context on any interrupt, SIGURG included, and one
//     reader giving up must not fail the others. Each waiter selects on its own ctx.Done();
//     all waiters get the fetch's error, and nobody refetches on their behalf.
//   - Exact lengths. A fetch must deliver exactly min(unit, Size-off) bytes. A short body is
//     an error (ErrShortBody); a longer one (ErrLongBody) is what a decompressive-transcoding
//     (Content-Encoding: gzip) object returns for a ranged read when the client did not ask for
//     stored bytes. Neither is ever cached. store/gcs asks for stored bytes, so gzip objects
//     cache and read as their compressed bytes, consistent with their size.
//   - Streaming reads. Reads are matched against up to 8 "streams" per object generation
//     (where each reader's last read ended, ±1 MiB, or ±ChunkSize/4 for small chunks; an
//     established stream also continues across a forward skip of up to half a chunk). A read
//     that continues a stream, or starts at offset 0, is served by whole chunks fetched into
//     memory (mem.go): readers get bytes as soon as they arrive from the Source, not when the
//     chunk is on disk. A chunk is fetched as several ranged GETs at once, its parts, sized to
//     the link (fetch.go): over a link where a GET waits tens of milliseconds for its first
//     byte and one connection carries a fraction of the link, that is what fills it. Once a
//     stream is established (started at 0, or continued twice) the chunks after it are
//     prefetched into memory too, in a window that starts at one chunk and doubles each time
//     the reader had to wait for bytes in the chunk it leaves (prefetch.go states the policy).
//     A complete chunk is queued for the write-behind workers
//     (writeWorkers of them), which take the oldest queued chunk still in memory and write it
//     to its data file around the page cache (O_DIRECT: copying a chunk into page-cache pages
//     and writing them back cost the daemon a third of its CPU on a cold read). The reader
//     never waits for the disk: a queued chunk pins no memory, and one pushed out of memory
//     before a worker took it (the disk is slower than the network), or whose write fails
//     (disk full), is served and not cached. A written chunk stays in memory for its readers
//     until memory is needed, so a sequential reader is served from memory from the first
//     byte of a chunk to the last. The states of a chunk and the moves between them are
//     data, in chunkstate.go. A body that breaks off mid-chunk is continued from where it
//     stopped (maxResumes). StopPrefetch (the last handle of a file went) cancels fetches no
//     reader waits for.
//   - Integrity (verify.go). A chunk that is the whole object is checked against the object's
//     CRC32C before a byte is served; chunks of larger objects are served unchecked and
//     checked together once all their CRCs are known, and a generation that fails is dropped.
//   - Random reads (see Decisions) are served by 256 KiB blocks, cached like chunks under
//     their own keys, until a region proves hot.
//   - Write-through. Cache.Fill stores the chunks of a generation plxfs just uploaded from the
//     local copy, so reading it back needs no fetch.
//   - Zero copy. ReadSpan serves a sequential read within one chunk as a Span (the bytes'
//     place in the data file, held until Close) rather than a copy, so a FUSE mount can splice
//     them to the kernel.
//   - Whole objects. Once every byte of a generation is cached, OpenWhole hands out its data
//     file, pinned: a FUSE mount gives it to the kernel, which then serves reads itself
//     (passthrough) at the speed of a local file.
//
// # On-disk format
//
//	Dir/lock                      flock'ed by the owning process; holds its pid
//	Dir/v2/<hh>/<id>.data         one object generation's bytes at their own offsets (sparse)
//	Dir/v2/<hh>/<id>.idx          its index: a header, then one record per unit
//
// id is the hex SHA-256 of {bucket, name, generation} (length-prefixed strings, so no two
// objects collide), hh its first two hex digits. The data file is exactly as long as the object;
// what is not cached is a hole. The index header (layout in format.go) holds magic
// "PLXOBJIX", format version, header length, generation, object size, chunk and block unit
// sizes, bucket and name, and its own CRC32C. Records follow, 16 bytes per unit slot (every
// chunk, then every block): the CRC32C of the unit's data, a fill sequence number (recency
// across restarts), and a CRC of the record, so that a zeroed or torn record is no record. A new
// format gets a new directory (v2 replaced v1, which held one file per chunk with a header);
// Open removes the directories of older versions.
//
// A unit is written into the data file first and its record after, so a crash leaves bytes
// without a record (punched out at the next Open) and never a record without its bytes, as far
// as the process goes. Nothing is fsync'ed: after a power loss a record can come back with data
// that did not, which the checks below catch.
//
// # Restart and damage
//
// Open re-indexes Dir/v2: each index header is decoded and checked (magic, version, header CRC,
// object matching the file name, unit sizes in use, length its records need) and the data file
// must have the object's size; failures lose both files. Units with valid records are indexed
// in fill order; bytes no record covers are punched out. The data CRC of a re-indexed unit is
// verified once, on its first read (shared by concurrent readers), not at Open: a 10 GiB cache
// would otherwise delay every daemon start by reading 10 GiB. While running, every read checks
// the data file's length (a file of another length was damaged outside plxfs: all its units are
// dropped and refetched), and a file that vanished is dropped the same way. A unit written by
// this process is checked the same way before its first read back, unless every one of its
// pages is still in the page cache (mincore): those pages are the bytes written, not yet read
// from the disk, so there is nothing to check (settleWritten). Either way a unit is checked
// once per process, not on every read (that would mean checksumming whole chunks on every
// 4 KiB read): bytes that rot on the disk after their first check are caught at the next
// restart. A unit's pages brought back from the disk by the kernel's readahead of a
// neighbouring unit would pass as written; that needs a neighbour read from disk and a flip
// in the few pages readahead reaches, and is accepted. Chunks are written around the page
// cache (see Streaming reads), so in practice only the last partial page of an object and
// Fill's writes take that shortcut. OpenWhole needs every unit verified: when every byte is
// cached but some units are not checked yet, it refuses and checks them in the background, so
// that a later open gets the view.
//
// # Space accounting
//
// Each unit is accounted at its length rounded up to 4 KiB, and each object's index file at its
// size rounded up while the object has indexed units. A block and the chunk that contains it
// are both accounted though they share disk blocks (over-counting, never under). A unit
// reserves its space (evicting least recently used units) before it is written, so indexed
// units plus units being written stay within MaxBytes, except when more fetches are in flight
// than fit at once, and except for pinned objects (see Whole), whose evicted units keep their
// bytes until the last pin goes. Releasing a unit clears its record and punches out the bytes
// no other indexed or in-progress unit covers; an object with no units left loses its files. A
// unit that could never fit (MaxBytes below one chunk) is read directly from the Source,
// uncached. The LRU's entry bound is MaxBytes/4 KiB + 1, which never binds before the byte
// bound.
//
// # Memory
//
// The read path's memory is a hard budget, Options.PrefetchMemory (64 MiB by default, at least
// two chunks), counted in whole chunk buffers: chunks being fetched, waiting for their readers,
// queued for or being written to disk, or referenced by a reply in flight. The buffers are
// anonymous mappings outside the Go heap (memPool), so they do not count against the
// daemon's soft heap limit and make no work for the garbage collector; free ones are unmapped
// after 2 s without use. When the budget is used up, a reader's own fetch frees a chunk that no
// fetch, write or reply holds, the cheapest first (evictRank): one on disk and read to the
// end, then one read to the end, then the least recently used; prefetch frees only chunks read
// to the end, and otherwise stops: it waits for the reader. A reader that finds no room at all
// reads its range directly from the Source, uncached: never more work than a direct read. Only
// the chunks being written (writeWorkers) are pinned by the disk, so a stalled disk leaves
// the rest of the budget streaming.
//
// # Locks
//
// Lock order: acquire left before right, never the reverse.
//
//	objState.io → Cache.mu → semaphore's internal lock (TryAcquire only, never blocking)
//	objState.io → objState.initMu → Cache.mu
//	Cache.mu → link.mu (a leaf: the part size is read while a fetch is set up)
//	Cache.seqMu (never held with another lock; observe reads the generation's epoch under
//	Cache.mu before it takes seqMu)
//
// Cache.mu guards the LRU, the byte counters, the busy and writing sets, the object table and
// each object's reference and pin counts, and the read path in memory: the table of chunks in
// memory, every memChunk's state, progress and references, the buffer pool, and the
// generations' CRC sets. It is never held across network or file I/O. A fetch copies bytes
// into its chunk's buffer without it and takes it only to publish progress (every 256 KiB);
// readers take it to look up a chunk and to wait for bytes (on a channel, after unlocking).
// objState.io orders file I/O on one object: readers and the writes of fills hold it shared
// (a fill only around each 256 KiB write, not across the network read), and releasing a unit
// or removing the files hold it exclusively, so a reader never sees a range punched under it:
// it holds io shared, checks under Cache.mu that the unit is still indexed as the entry it
// looked up (entries are compared by pointer for that reason), then reads. A Span holds io
// shared from ReadSpan to Close (while the caller sends its bytes), so a release of that
// object waits for the reply to be written. The LRU's removal callback runs under
// Cache.mu, does not call back into the LRU, and only queues a release, run after unlocking.
// singleflight's lock is never held while our code runs, and no lock of ours is held while
// calling into it.
//
// A unit has one writer at a time (fills and Fill run inside the unit's singleflight call). A
// release skips what is indexed or being written at the time it holds io: a unit evicted and
// refilled at once keeps its bytes, and a failed write releases only what no one else covers.
// An object's files are removed when its reference count (indexed units, writes in progress,
// releases pending) reaches zero with no pin, under io held exclusively; a writer that arrives
// meanwhile takes a reference and recreates them.
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
// Readahead default 16 chunks (Options.Readahead 0 means the default; negative disables it),
// bounded by the budget: with the default 64 MiB and 8 MiB chunks, 8 chunks, of which the
// window uses what the reader's waits ask for. The default budget is 64 MiB: on a link shaped
// like GCS (20 ms to the first byte, 50 MiB/s a connection, 400 MiB/s in all) a reader needs
// about the link's bandwidth × (first-byte delay + one part's transfer time) in flight, plus
// the chunk it reads and those on their way to disk, and 32 MiB (4 chunks) left two thirds of
// that link idle. The daemon's peak RSS with it stays within 160 MiB. `plxfs mount` sizes it
// from a cgroup memory limit when there is one (--prefetch-memory auto). The mount's benchmark
// (integration, `make bench`) decides the figures; README has them.
//
// Keys include the unit size. A daemon restarted with another ChunkSize must not read an old
// 4 MiB chunk 3 as the new 8 MiB chunk 3; old chunks are dropped at Open.
//
// Fill stores at most MaxBytes/2 of one object (its first chunks), so one large upload cannot
// flush the whole cache.
package cache
