package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/sync/singleflight"
)

// Source reads byte ranges of one object generation. store.Bucket satisfies it.
//
// NewRangeReader returns n bytes starting at off of generation gen of the object name. The
// cache checks that exactly n bytes arrive: a shorter or a longer body is an error and is never
// cached.
type Source interface {
	NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error)
}

// Object is the identity of one object generation. Name is the full object name in the bucket.
// Generation must be positive: the cache never stores bytes it cannot pin to a generation.
type Object struct {
	Bucket, Name     string
	Generation, Size int64
	// CRC32C is GCS's Castagnoli checksum of the whole generation, when HasCRC32C: reads are
	// checked against it (see verify.go).
	CRC32C    uint32
	HasCRC32C bool
}

// Defaults for the zero values of Options.
const (
	DefaultMaxBytes     int64 = 10 << 30
	DefaultChunkSize    int64 = 8 << 20
	DefaultReadahead          = 16
	DefaultFetchTimeout       = 2 * time.Minute
	// DefaultPrefetchMemory is the default memory budget of the read path: chunks arriving
	// from GCS, waiting for their readers and on their way to disk.
	DefaultPrefetchMemory int64 = 64 << 20
)

// Options configure a Cache. Zero values select the documented defaults.
type Options struct {
	// Dir is the cache directory; it is created if missing and locked (flock on Dir/lock) so
	// that two processes cannot share it.
	Dir string
	// MaxBytes bounds the bytes of cached units on disk (and of the index files of their
	// objects), counted in 4 KiB blocks and including units being written. Default
	// DefaultMaxBytes.
	MaxBytes int64
	// ChunkSize is the fetch and storage unit for sequential reads. Default DefaultChunkSize.
	ChunkSize int64
	// Readahead bounds the prefetch window: the chunks fetched into memory ahead of a
	// sequential reader (see nextWindow). 0 selects DefaultReadahead; a negative value
	// disables prefetch.
	Readahead int
	// PrefetchMemory is the memory budget of the read path, a hard bound: chunks being fetched,
	// waiting for their readers or for the disk all count, in whole chunks, and at least two
	// chunks are allowed. 0 selects DefaultPrefetchMemory. See doc.go "Memory".
	PrefetchMemory int64
	// FetchTimeout bounds one shared fetch of a chunk. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Logger receives warnings (damaged cache files, failed readahead). Default slog.Default().
	Logger *slog.Logger
	// OnChecksumMismatch, when set, is called once for each fetch whose bytes did not match the
	// object's CRC32C (metrics). It must not block.
	OnChecksumMismatch func()
	// VerifyReads makes the first read of an object larger than a chunk wait until the whole
	// object has been streamed once and has passed its CRC32C check; every chunk fetched after
	// that is checked against the CRC the check learnt before it is served (see verify.go).
	// Objects without a CRC32C are read as usual.
	VerifyReads bool

	// randomPolicy and blockSize select how non-sequential reads of cold chunks are served;
	// tests and benchmarks override them, the defaults are what doc.go argues for.
	randomPolicy randomPolicy
	blockSize    int64
	// partSize, when set, fixes the size of the GETs a chunk is fetched in (see link.partSize).
	partSize int64
	// beforeWrite, when set, runs before each write-behind of a chunk (tests: a slow disk).
	beforeWrite func()
	// syncCheck is the object size up to which OpenWhole checks unchecked units before it
	// answers (0: syncCheckBytes); tests lower it to reach the background check.
	syncCheck int64
}

// randomPolicy is how a non-sequential read of a chunk that is neither cached nor being fetched
// is served. See doc.go "Random reads" for the measurements behind the default.
type randomPolicy int

const (
	// policyAdaptive fetches and caches the small blocks the read touches, and fetches the whole
	// chunk in the background once escalateAfter blocks of it are cached.
	policyAdaptive randomPolicy = iota
	// policyChunk fetches the whole chunk, as sequential reads do.
	policyChunk
	// policyBlock fetches and caches only the small blocks the read touches.
	policyBlock
)

const (
	// defaultBlockSize is the fetch unit of random reads: big enough that a 4 KiB–128 KiB read
	// costs one request, small enough that its transfer time is a fraction of a GCS request's
	// first-byte latency (256 KiB at 100 MiB/s is 2.5 ms).
	defaultBlockSize int64 = 256 << 10
	// escalateAfter is the number of cached (or arriving) blocks of a chunk after which a further
	// random miss in that chunk also fetches the whole chunk in the background: readers keep
	// coming back to this region, so the whole chunk will pay for itself.
	escalateAfter = 2
	// diskBlock is the allocation unit assumed when accounting units against MaxBytes.
	diskBlock = 4096
	// maxAttempts bounds how often one read retries a chunk that was evicted or found damaged
	// between its fetch and its read, before falling back to a direct range read.
	maxAttempts = 3
)

// ErrInUse is wrapped by Open's error when another process holds the cache directory.
var ErrInUse = errors.New("in use by another plxfs process")

// ErrClosed is returned by reads and fills on a closed Cache.
var ErrClosed = errors.New("cache: closed")

// ErrShortBody and ErrLongBody are wrapped by fetch errors when a Source returned fewer or more
// bytes than requested. A long body is what a decompressive-transcoding (Content-Encoding:
// gzip) object returns for a ranged read: the whole decoded object.
var (
	ErrShortBody = errors.New("source returned fewer bytes than requested")
	ErrLongBody  = errors.New("source returned more bytes than requested (decompressive transcoding?)")
)

// Stats are counters since Open (Bytes and Chunks are current values).
type Stats struct {
	Bytes           int64 // bytes of indexed units and their index files, rounded up to 4 KiB blocks
	Chunks          int   // indexed units (whole chunks and random-read blocks)
	Hits            int64 // unit reads served from disk without waiting for a fetch
	Misses          int64 // unit reads that started or joined a fetch
	Fetches         int64 // range requests sent to a Source (fills and direct reads)
	BytesFetched    int64 // bytes received from Sources
	Evictions       int64 // units evicted to stay under MaxBytes
	Damaged         int64 // units or data files found damaged (dropped, then refetched)
	Readaheads      int64 // chunk fetches started ahead of a reader (prefetch, escalation)
	FetchesInFlight int64 // range requests in progress

	MemoryHits         int64 // reads served from chunks in memory
	Resumes            int64 // fetches continued after a body broke off
	WriteSkips         int64 // chunks not cached because the disk was behind (pushed out of memory before a worker wrote them)
	WriteErrors        int64 // chunks not cached because writing them failed (disk full, I/O error)
	ChecksumMismatches int64 // fetched bytes that did not match the object's CRC32C
	MemoryBytes        int64 // chunk buffers in use (the prefetch memory budget's use)

	// What the fetches learnt of the link (see fetch.go): the moving averages of a GET's delay
	// to its response and of its transfer rate (0 before a sample), and the size of the parts
	// a chunk is fetched in now.
	LinkFirstByte time.Duration
	LinkRate      int64
	PartSize      int64
}

// Cache is a chunked, size-bounded LRU disk cache of object bytes. It is safe for concurrent use.
type Cache struct {
	opts     Options
	root     string // Options.Dir
	log      *slog.Logger
	lockFile *os.File
	baseCtx  context.Context // cancelled by Close; bounds every fill
	cancel   context.CancelFunc
	wg       sync.WaitGroup // fills and background fetches in progress
	fillSeq  atomic.Uint64  // last fill sequence number used in a unit record
	flights  singleflight.Group
	isClosed atomic.Bool
	noPunch  atomic.Bool // the file system refused to punch a hole (warned once)
	link     link        // what the chunk fetches learnt of the link to the Source (fetch.go)

	// mu guards the fields below. It is never held across network or chunk-file I/O.
	mu       sync.Mutex
	lru      *simplelru.LRU[key, *entry]
	bytes    int64       // accounted bytes of indexed units and their objects' index files
	reserved int64       // accounted bytes of units being written
	busy     map[key]int // units with a fetch started or queued
	writing  map[key]int // units being written by store (see uncoveredLocked)
	objs     map[objectID]*objState
	doomed   []job // units unindexed under mu, to release after unlocking
	closed   bool

	// The read path in memory (mem.go), also guarded by mu.
	mem           map[key]*memChunk // chunks in memory, by key
	pool          memPool           // their buffers: the memory budget
	memTick       uint64            // use counter for memChunk.used
	maxWindow     int               // bound of the prefetch window, in chunks
	genEpoch      map[objectID]int  // bumped when a generation fails its CRC check
	roomWake      chan struct{}     // closed (and replaced) when a chunk reference goes: readers waiting for room look again
	sums          *simplelru.LRU[objectID, *genSums]
	verifiedGens  *simplelru.LRU[objectID, []uint32] // generations that passed, with their chunk CRCs
	failedGens    *simplelru.LRU[objectID, struct{}] // generations that failed since they last passed
	lastWriteWarn time.Time

	// The write-behind queue (mem.go): chunks in memory waiting to be written to disk.
	toWrite    []*memChunk   // complete chunks waiting for the write-behind worker, oldest first; guarded by mu
	writeWake  chan struct{} // signals the worker that toWrite grew
	stopWrites chan struct{}
	writers    sync.WaitGroup

	// seqMu guards seq. It is never held together with mu.
	seqMu sync.Mutex
	seq   *simplelru.LRU[objectID, *streams]

	hits, misses, fetches, fetched, evictions, damaged, readaheads, inFlight atomic.Int64
	memHits, resumes, writeSkips, writeErrors, crcMismatches                 atomic.Int64
	pendingWrites, fetchesRunning                                            atomic.Int64 // writes queued or running; memory fetches running
}

// entry is the LRU value of one indexed unit. Entries are compared by pointer: a reader or a
// release that looked one up acts only if the unit is still indexed as that entry.
type entry struct {
	obj      *objState
	disk     int64  // accounted size
	crc      uint32 // CRC32C of the unit's data
	verified bool   // data checked since this process last could have read it from disk; guarded by Cache.mu
	written  bool   // written by this process (its bytes may still be in the page cache); immutable
}

// Open locks opts.Dir, re-indexes the object files found there and evicts down to MaxBytes.
func Open(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("cache: Options.Dir is empty; set the cache directory")
	}
	if opts.MaxBytes == 0 {
		opts.MaxBytes = DefaultMaxBytes
	}
	if opts.ChunkSize == 0 {
		opts.ChunkSize = DefaultChunkSize
	}
	if opts.Readahead == 0 {
		opts.Readahead = DefaultReadahead
	}
	if opts.Readahead < 0 {
		opts.Readahead = 0
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.PrefetchMemory <= 0 {
		opts.PrefetchMemory = DefaultPrefetchMemory
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.blockSize == 0 {
		opts.blockSize = defaultBlockSize
	}
	if opts.syncCheck == 0 {
		opts.syncCheck = syncCheckBytes
	}
	if opts.MaxBytes < 0 || opts.ChunkSize < 0 {
		return nil, fmt.Errorf("cache: MaxBytes (%d) and ChunkSize (%d) must be positive", opts.MaxBytes, opts.ChunkSize)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache: create cache dir: %w", err)
	}
	lock, err := lockDir(opts.Dir)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		opts:     opts,
		root:     opts.Dir,
		log:      opts.Logger,
		lockFile: lock,
		busy:     make(map[key]int),
		writing:  make(map[key]int),
		objs:     make(map[objectID]*objState),
		mem:      make(map[key]*memChunk),
		genEpoch: make(map[objectID]int),
		roomWake: make(chan struct{}),
	}
	c.pool = memPool{size: opts.ChunkSize, max: int(max(opts.PrefetchMemory/opts.ChunkSize, 2))}
	c.maxWindow = min(opts.Readahead, c.pool.max)
	c.sums, _ = simplelru.NewLRU[objectID, *genSums](maxGenSums, nil)
	c.verifiedGens, _ = simplelru.NewLRU[objectID, []uint32](maxGenSums, nil)
	c.failedGens, _ = simplelru.NewLRU[objectID, struct{}](maxGenSums, nil)
	c.writeWake = make(chan struct{}, 1)
	c.stopWrites = make(chan struct{})
	c.baseCtx, c.cancel = context.WithCancel(context.Background())
	// Every entry accounts at least one disk block, so this entry bound never binds before
	// the byte bound does; it only keeps the LRU's own limit consistent with MaxBytes.
	c.lru, _ = simplelru.NewLRU[key, *entry](int(min(opts.MaxBytes/diskBlock+1, 1<<40)), c.onRemoveLocked)
	c.seq, _ = simplelru.NewLRU[objectID, *streams](4096, nil)
	if err := c.reindex(); err != nil {
		c.cancel()
		lock.Close()
		return nil, err
	}
	c.writers.Add(1 + writeWorkers)
	for range writeWorkers {
		go c.writeBehind()
	}
	go c.reapPool()
	return c, nil
}

// writeWorkers is how many chunks are written to the disk at once.
const writeWorkers = 2

// reapPool unmaps idle chunk buffers (see memPool) until Close.
func (c *Cache) reapPool() {
	defer c.writers.Done()
	t := time.NewTicker(poolIdle)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.mu.Lock()
			c.pool.reap(false)
			c.mu.Unlock()
		case <-c.stopWrites:
			return
		}
	}
}

// lockDir takes an exclusive flock on dir/lock and records our pid in it. The lock lives as long
// as the returned file stays open (and dies with the process).
func lockDir(dir string) (*os.File, error) {
	name := filepath.Join(dir, "lock")
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := "unknown pid"
		if b, rerr := os.ReadFile(name); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil {
				holder = "pid " + strconv.Itoa(pid)
			}
		}
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("cache dir %s is %w (%s holds %s); stop it or use another cache dir", dir, ErrInUse, holder, name)
		}
		return nil, fmt.Errorf("cache: lock %s: %w", name, err)
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cache: write lock file %s: %w", name, err)
	}
	return f, nil
}

// Close waits for fetches in progress (cancelling them) and releases the directory lock.
// Reads after Close fail with ErrClosed.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.isClosed.Store(true)
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	close(c.stopWrites) // the write-behind worker writes what is queued, then stops
	c.writers.Wait()
	c.mu.Lock()
	c.pool.reap(true)
	c.mu.Unlock()
	if err := c.lockFile.Close(); err != nil {
		return fmt.Errorf("cache: release lock: %w", err)
	}
	return nil
}

// Dir is the cache directory (Options.Dir).
func (c *Cache) Dir() string { return c.root }

// Stats returns a snapshot of the counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	bytes, chunks := c.bytes, c.lru.Len()
	memBytes := int64(c.pool.out) * c.pool.size
	c.mu.Unlock()
	firstByte, linkRate := c.link.shape()
	return Stats{
		Bytes:           bytes,
		Chunks:          chunks,
		Hits:            c.hits.Load(),
		Misses:          c.misses.Load(),
		Fetches:         c.fetches.Load(),
		BytesFetched:    c.fetched.Load(),
		Evictions:       c.evictions.Load(),
		Damaged:         c.damaged.Load(),
		Readaheads:      c.readaheads.Load(),
		FetchesInFlight: c.inFlight.Load(),

		MemoryHits:         c.memHits.Load(),
		Resumes:            c.resumes.Load(),
		WriteSkips:         c.writeSkips.Load(),
		WriteErrors:        c.writeErrors.Load(),
		ChecksumMismatches: c.crcMismatches.Load(),
		MemoryBytes:        memBytes,

		LinkFirstByte: firstByte,
		LinkRate:      linkRate,
		PartSize:      c.link.partSize(c.opts.ChunkSize),
	}
}

// Invalidate drops every cached generation of one object (and what the cache learnt about its
// readers' access pattern). Keys carry the generation, so this only frees space early; it is
// never needed for correctness.
func (c *Cache) Invalidate(bucket, name string) {
	c.mu.Lock()
	for _, k := range c.lru.Keys() {
		if k.Bucket == bucket && k.Name == name {
			c.lru.Remove(k)
		}
	}
	for k, m := range c.mem {
		if k.Bucket == bucket && k.Name == name {
			if m.state == stInMemory {
				m.move(stAbsent)
			}
			c.untableLocked(m)
		}
	}
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.release(doomed)
	c.seqMu.Lock()
	for _, id := range c.seq.Keys() {
		if id.bucket == bucket && id.name == name {
			c.seq.Remove(id)
		}
	}
	c.seqMu.Unlock()
}

func diskSize(n int64) int64 { return (n + diskBlock - 1) / diskBlock * diskBlock }

// onRemoveLocked is the LRU's removal callback; it runs under mu inside Remove, RemoveOldest
// and Add, and must not call back into the LRU.
func (c *Cache) onRemoveLocked(k key, e *entry) {
	c.bytes -= e.disk
	if e.obj.units--; e.obj.units == 0 {
		c.bytes -= e.obj.idxDisk()
	}
	c.doomed = append(c.doomed, job{o: e.obj, k: k})
}

func (c *Cache) takeDoomedLocked() []job {
	d := c.doomed
	c.doomed = nil
	return d
}

// evictLocked removes least recently used units until indexed and reserved bytes fit MaxBytes.
func (c *Cache) evictLocked() {
	for c.bytes+c.reserved > c.opts.MaxBytes && c.lru.Len() > 0 {
		c.lru.RemoveOldest()
		c.evictions.Add(1)
	}
}

// insertLocked indexes a unit, replacing (and dooming) an older entry of the same key.
func (c *Cache) insertLocked(k key, e *entry) {
	if _, ok := c.lru.Peek(k); ok {
		c.lru.Remove(k)
	}
	c.lru.Add(k, e)
	c.bytes += e.disk
	if e.obj.units++; e.obj.units == 1 {
		c.bytes += e.obj.idxDisk()
	}
	c.evictLocked()
}

// found is one cached unit seen while re-indexing.
type found struct {
	key key
	seq uint64
	e   *entry
}

// reindex rebuilds the LRU from the object files under Dir/v2. An index file must have a valid
// header naming the object its file name is derived from, the chunk and block sizes in use, and
// the length its records need, and its data file must have the object's size; otherwise both
// files are removed. Units with a valid record are indexed in fill order; the data checksum of
// each is verified on its first read (see doc.go). Bytes no record covers (a fill cut short by a
// crash) are punched out. Directories of older layouts are removed.
func (c *Cache) reindex() error {
	for _, old := range oldLayouts {
		p := filepath.Join(c.root, old)
		if _, err := os.Stat(p); err == nil {
			c.log.Info("cache: removing cache files of an older plxfs version", "dir", p)
			if err := os.RemoveAll(p); err != nil {
				return fmt.Errorf("cache: remove old cache files: %w", err)
			}
		}
	}
	base := filepath.Join(c.root, layoutVersion)
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("cache: create cache dir: %w", err)
	}
	subdirs, err := os.ReadDir(base)
	if err != nil {
		return fmt.Errorf("cache: read cache dir: %w", err)
	}
	var all []found
	removed := 0
	for _, sd := range subdirs {
		if !sd.IsDir() || len(sd.Name()) != 2 {
			continue
		}
		dir := filepath.Join(base, sd.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("cache: read cache dir: %w", err)
		}
		kinds := map[string]map[string]bool{}
		for _, fe := range files {
			id, suffix, ok := parseObjectName(fe.Name())
			if !ok || id[:2] != sd.Name() {
				c.log.Warn("cache: ignoring unexpected file in cache dir", "path", filepath.Join(dir, fe.Name()))
				continue
			}
			if kinds[id] == nil {
				kinds[id] = map[string]bool{}
			}
			kinds[id][suffix] = true
		}
		for id, has := range kinds {
			data, idx := objectPaths(c.root, id)
			if !has["idx"] || !has["data"] {
				os.Remove(data)
				os.Remove(idx)
				removed++
				continue
			}
			units, err := c.loadObject(id, data, idx)
			if err != nil {
				c.log.Warn("cache: removing unusable cache file", "path", idx, "err", err)
				os.Remove(data)
				os.Remove(idx)
				removed++
				continue
			}
			all = append(all, units...)
		}
	}
	slices.SortFunc(all, func(a, b found) int { return cmp.Compare(a.seq, b.seq) })
	var maxSeq uint64
	c.mu.Lock()
	for _, f := range all {
		maxSeq = max(maxSeq, f.seq)
		c.insertLocked(f.key, f.e)
	}
	doomed := c.takeDoomedLocked()
	c.mu.Unlock()
	c.fillSeq.Store(maxSeq)
	c.release(doomed)
	c.mu.Lock()
	kept := c.lru.Len()
	c.mu.Unlock()
	if len(all) > 0 || removed > 0 {
		c.log.Info("cache: re-indexed cache dir", "dir", c.root, "units", kept,
			"evicted", len(all)-kept, "removed_damaged_or_partial", removed)
	}
	return nil
}

// loadObject checks one object's index and data files and returns its cached units, after
// punching out the bytes no unit covers. An object with no unit has its files removed.
func (c *Cache) loadObject(id, data, idx string) ([]found, error) {
	ix, err := os.Open(idx)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	h, err := readHeader(ix)
	if err != nil {
		return nil, err
	}
	if h.obj.fileID() != id {
		return nil, fmt.Errorf("%w: header does not match file name", errBadHeader)
	}
	if h.chunk != c.opts.ChunkSize || h.blk != c.opts.blockSize {
		return nil, fmt.Errorf("units %d/%d are not in use (chunk size %d)", h.chunk, h.blk, c.opts.ChunkSize)
	}
	recs := make([]byte, h.slots()*recordLen)
	if n, err := ix.ReadAt(recs, h.len()); n != len(recs) {
		return nil, fmt.Errorf("truncated index file: %v", err)
	}
	if st, err := os.Stat(data); err != nil {
		return nil, err
	} else if st.Size() != h.size {
		return nil, fmt.Errorf("data file has %d bytes, want %d", st.Size(), h.size)
	}
	o := &objState{id: h.obj, hdr: h, data: data, idx: idx, ready: true}
	var units []found
	var covered [][2]int64
	for slot := range h.slots() {
		r, ok := decodeRecord(recs[slot*recordLen : (slot+1)*recordLen])
		if !ok {
			continue
		}
		k := h.unitOf(slot)
		n := k.length(h.size)
		units = append(units, found{key: k, seq: r.seq, e: &entry{obj: o, disk: diskSize(n), crc: r.dataCRC}})
		covered = append(covered, [2]int64{k.off(), k.off() + n})
	}
	if len(units) == 0 {
		os.Remove(data)
		os.Remove(idx)
		return nil, nil
	}
	if err := punch(data, h.size, gaps(0, h.size, covered)); err != nil {
		c.log.Warn("cache: release uncached bytes", "path", data, "err", err)
	}
	o.refs = len(units)
	c.mu.Lock()
	c.objs[o.id] = o
	c.mu.Unlock()
	return units, nil
}

// checkInvariants reports the first broken invariant of the index, for tests: byte counters
// agree with the entries, nothing is reserved or busy while idle (idle says the caller waited
// for fetches to finish), every object's reference count matches its units, and every indexed
// unit has a data file of the object's size and a valid record with its checksum.
func (c *Cache) checkInvariants(idle bool) error {
	c.mu.Lock()
	var sum int64
	type unit struct {
		k key
		e *entry
	}
	var units []unit
	per := map[*objState]int{}
	for _, k := range c.lru.Keys() {
		e, _ := c.lru.Peek(k)
		sum += e.disk
		units = append(units, unit{k, e})
		if per[e.obj]++; per[e.obj] == 1 {
			sum += e.obj.idxDisk()
		}
	}
	var bad error
	for id, o := range c.objs {
		if o.id != id {
			bad = fmt.Errorf("object %v indexed under %v", o.id, id)
		}
		if o.units != per[o] {
			bad = fmt.Errorf("object %s counts %d units, %d indexed", o.data, o.units, per[o])
		}
		if idle && o.refs != per[o]+len(o.deferred) {
			bad = fmt.Errorf("object %s has %d references, %d units and %d deferred releases", o.data, o.refs, per[o], len(o.deferred))
		}
	}
	for o := range per {
		if c.objs[o.id] != o {
			bad = fmt.Errorf("indexed unit of unknown object %v", o.id)
		}
	}
	bytes, reserved, busy := c.bytes, c.reserved, len(c.busy)+len(c.writing)
	if idle && bad == nil {
		for k, m := range c.mem {
			if m.k != k || (m.state != stInMemory && m.state != stCached) || m.refs != 1 || m.buf == nil {
				bad = fmt.Errorf("idle chunk %+v in memory: state %s, %d references", k, m.state, m.refs)
			}
		}
		if c.pool.out != len(c.mem) {
			bad = fmt.Errorf("%d chunk buffers handed out, %d chunks in memory", c.pool.out, len(c.mem))
		}
	}
	c.mu.Unlock()
	if bad != nil {
		return bad
	}
	if sum != bytes {
		return fmt.Errorf("entries account %d bytes, counter says %d", sum, bytes)
	}
	if idle && (reserved != 0 || busy != 0) {
		return fmt.Errorf("idle cache has %d bytes reserved and %d units busy", reserved, busy)
	}
	if bytes+reserved > c.opts.MaxBytes && idle {
		return fmt.Errorf("%d bytes indexed over MaxBytes %d", bytes, c.opts.MaxBytes)
	}
	for _, u := range units {
		o := u.e.obj
		fi, err := os.Stat(o.data)
		if err != nil {
			return fmt.Errorf("indexed data file: %w", err)
		}
		if fi.Size() != o.hdr.size {
			return fmt.Errorf("data file %s has %d bytes, want %d", o.data, fi.Size(), o.hdr.size)
		}
		ix, err := os.Open(o.idx)
		if err != nil {
			return fmt.Errorf("indexed index file: %w", err)
		}
		b := make([]byte, recordLen)
		_, err = ix.ReadAt(b, o.hdr.recordOff(u.k))
		ix.Close()
		if r, ok := decodeRecord(b); err != nil || !ok || r.dataCRC != u.e.crc {
			return fmt.Errorf("record of indexed unit %+v in %s: %v (valid %v)", u.k, o.idx, err, ok)
		}
	}
	return nil
}
