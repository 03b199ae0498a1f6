package vfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/semaphore"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// Defaults for the zero values of Config.
const (
	DefaultTTL              = 60 * time.Second
	DefaultStatCacheEntries = 100_000
	DefaultNegCacheEntries  = 20_000
	DefaultFileMode         = 0o644
	DefaultDirMode          = 0o755
)

// ReadCache is what the core needs of the read cache: reads of object generations through it
// (ReadSpan may answer with the bytes' place instead of a copy), the whole cached file for
// the kernel to read itself, an end to a closed file's prefetch, and the write-through of a
// generation just uploaded. *cache.Cache implements it.
type ReadCache interface {
	ReadAt(ctx context.Context, src cache.Source, obj cache.Object, p []byte, off int64) (int, error)
	ReadSpan(ctx context.Context, src cache.Source, obj cache.Object, p []byte, off int64) (*cache.Span, int, error)
	OpenWhole(obj cache.Object) (*cache.Whole, bool)
	StopPrefetch(obj cache.Object)
	Fill(obj cache.Object, r io.ReaderAt) error
}

var _ ReadCache = (*cache.Cache)(nil)

// Config configures the core: the filesystem's behaviour without the kernel's part. Package
// fs fills in the defaults of its Options before it makes one.
type Config struct {
	// Cache serves every read of object bytes. Required.
	Cache ReadCache
	// StagingDir holds the staging files of files being written. Required unless ReadOnly.
	StagingDir string
	// TTL bounds how long metadata is reused without asking the bucket (0: DefaultTTL; < 0:
	// not at all).
	TTL time.Duration
	// StatCacheEntries and NegCacheEntries bound the positive and negative lookup caches (0:
	// DefaultStatCacheEntries, DefaultNegCacheEntries).
	StatCacheEntries, NegCacheEntries int
	// ReadOnly refuses every change with ErrReadOnly.
	ReadOnly bool
	// NoPOSIXMetadata keeps only modification times in object metadata (see Attrs).
	NoPOSIXMetadata bool
	// UID and GID are the mount's owner: a new file records its creator's ids only when they
	// differ (an object without owner keys belongs to whoever mounts). They own every file
	// without recorded owner; FileMode and DirMode are the permission bits of files and
	// directories without recorded mode (0: DefaultFileMode, DefaultDirMode).
	UID, GID          uint32
	FileMode, DirMode uint32
	// Upload tunes uploads; Upload.Owner names this daemon's temporary parts.
	Upload transfer.Options
	// Logger, Observer and Now: nil selects slog.Default(), none, time.Now.
	Logger   *slog.Logger
	Observer Observer
	Now      func() time.Time
}

// Observer is told what only the filesystem sees. Its methods must not block.
type Observer interface {
	UploadObserver
	// CacheServed is called after the read cache returned n bytes for a read.
	CacheServed(n int64)
	// StaleServed is called when a lookup or stat is answered from what the mount last knew
	// because the backend did not answer its revalidation (see FS.staleOK).
	StaleServed()
}

type nopObserver struct{}

func (nopObserver) UploadStarted()              {}
func (nopObserver) UploadFinished(int64, error) {}
func (nopObserver) CacheServed(int64)           {}
func (nopObserver) StaleServed()                {}

// Caller is who asks for a new file: its owner is recorded when it is not the mount's.
type Caller struct {
	UID, GID uint32
	Known    bool
}

// FS is the core of one mount: its connections, the lookup cache, the drain gate and the
// files, directories and links the kernel knows (each connection's registry).
//
// Lock order (left before right, never the reverse; the leaves call out to nothing):
//
//	File.syncMu → Stage IO lock → File.mu → Conn.mu, FS.mu
//	File.mu → Opens.mu, Stage.mu, transfer.PartWriter.mu (leaves)
//	Dir.mu, Leaf.mu → Conn.mu, FS.mu
//
// Conn.mu and FS.mu are leaves too. File.syncMu (one upload of a file at a time) and the
// Stage IO lock (writes shared; upload, fill and truncate exclusive) are the only locks held
// across network I/O, and each concerns one file; at most one syncMu is held at a time. Waits
// (for releases, for a passthrough open) are channels selected on with no lock held.
type FS struct {
	cfg     Config
	log     *slog.Logger
	meta    *MetaCache
	gate    *Gate
	slots   *semaphore.Weighted // bounds the parts of streamed uploads in flight
	started time.Time           // the mount's start: the time of what has none

	// mu guards the fields below.
	mu           sync.Mutex
	conns        []*Conn
	hiddenLogged map[string]struct{}        // names already reported as hidden (bounded)
	incarnation  *lru.Cache[string, uint64] // a path's inode generation, moved on by removals
	dirTimes     map[*Dir]struct{}          // directories whose new times are not stored yet
	staleLogged  time.Time                  // when serving stale metadata was last logged
	staleSince   int                        // stale answers since (see servedStale)
}

// maxHiddenLogged bounds the set of hidden names remembered so that each is logged once.
const maxHiddenLogged = 10_000

// maxIncarnations bounds the remembered inode generations of removed paths. An evicted entry
// only matters if a file removed that long ago is still open when its path is reused.
const maxIncarnations = 1 << 16

// New makes the core of a mount; Connect adds its connections.
func New(cfg Config) (*FS, error) {
	if cfg.Cache == nil {
		return nil, errors.New("vfs: Config.Cache is required")
	}
	cfg.TTL = cmp.Or(cfg.TTL, DefaultTTL)
	cfg.StatCacheEntries = cmp.Or(max(cfg.StatCacheEntries, 0), DefaultStatCacheEntries)
	cfg.NegCacheEntries = cmp.Or(max(cfg.NegCacheEntries, 0), DefaultNegCacheEntries)
	cfg.FileMode = cmp.Or(cfg.FileMode, DefaultFileMode)
	cfg.DirMode = cmp.Or(cfg.DirMode, DefaultDirMode)
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Observer == nil {
		cfg.Observer = nopObserver{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Upload.Logger == nil {
		cfg.Upload.Logger = cfg.Logger
	}
	if !cfg.ReadOnly {
		if cfg.StagingDir == "" {
			return nil, errors.New("vfs: Config.StagingDir is required for a writable mount")
		}
		if err := os.MkdirAll(cfg.StagingDir, 0o700); err != nil {
			return nil, fmt.Errorf("staging directory: %w", err)
		}
	}
	inc, err := lru.New[string, uint64](maxIncarnations)
	if err != nil {
		return nil, err
	}
	workers := cfg.Upload.Workers
	if workers <= 0 {
		workers = transfer.DefaultWorkers
	}
	return &FS{
		cfg: cfg, log: cfg.Logger, gate: NewGate(cfg.ReadOnly), started: cfg.Now(),
		meta:         NewMetaCache(cfg.TTL, cfg.StatCacheEntries, cfg.NegCacheEntries, cfg.Now),
		slots:        semaphore.NewWeighted(int64(workers)),
		hiddenLogged: map[string]struct{}{},
		incarnation:  inc,
		dirTimes:     map[*Dir]struct{}{},
	}, nil
}

// Node is a registered File, Dir or Leaf.
type Node interface{ Path() string }

// Conn is one mounted connection: a bucket and a prefix, and the registry of its nodes (files,
// directories, symlinks and special files) by path, one per path. A registered node is the
// one a lookup of its path finds (the kernel's node for it, or a file whose node was forgotten
// with changes not uploaded yet: an orphan); a lookup that finds another kind of entry there
// replaces it, and renames move registered paths.
type Conn struct {
	Name   string
	fs     *FS
	bucket store.Bucket // the whole bucket
	objs   *Objects
	up     *Uploader

	// mu guards the registries.
	mu    sync.Mutex
	nodes map[string]Node
	// staged are the files with a staging file (local state), registered or orphaned, but
	// not unlinked: what listings merge, rmdir and directory renames look for, and SyncAll
	// uploads. A set of its own, so that none of these scans every file the kernel knows.
	staged map[*File]struct{}
}

// Connect adds the connection name: the objects of bucket (the whole bucket: cache keys use
// full object names) under prefix ("" or "a/b/").
func (f *FS) Connect(name string, bucket store.Bucket, prefix string) *Conn {
	objs := NewObjects(bucket, prefix)
	c := &Conn{Name: name, fs: f, bucket: bucket, objs: objs,
		nodes: map[string]Node{}, staged: map[*File]struct{}{}}
	c.up = &Uploader{Objects: objs, View: store.WithPrefix(bucket, prefix), Options: f.cfg.Upload, Slots: f.slots,
		Observer: f.cfg.Observer, Log: f.log.With("connection", name), Now: f.Now}
	f.mu.Lock()
	f.conns = append(f.conns, c)
	f.mu.Unlock()
	return c
}

// Root is the connection's root directory.
func (c *Conn) Root() *Dir { return c.Dir("", DirInfo(nil), time.Time{}, false) }

// View is the connection's view of its bucket (store.WithPrefix).
func (c *Conn) View() store.Bucket { return c.up.View }

// StopWrites makes the mount refuse new changes (creating, opening for write, namespace
// operations, attribute changes of files not being written) with ErrDraining: files already
// being written keep their staged data, which SyncAll uploads.
func (f *FS) StopWrites() { f.gate.StopWrites() }

// Refused is why the mount refuses changes now (ErrReadOnly, ErrDraining), or nil.
func (f *FS) Refused() error { return f.gate.Refused() }

// Now is the filesystem clock.
func (f *FS) Now() time.Time { return f.cfg.Now() }

// TTL is the metadata TTL (0 when caching is off).
func (f *FS) TTL() time.Duration { return max(f.cfg.TTL, 0) }

// Fresh reports whether something learnt at t is still within the TTL.
func (f *FS) Fresh(t time.Time) bool {
	return f.cfg.TTL > 0 && !t.IsZero() && f.Now().Before(t.Add(f.cfg.TTL))
}

// POSIX reports whether POSIX attributes are kept in object metadata.
func (f *FS) POSIX() bool { return !f.cfg.NoPOSIXMetadata }

func (f *FS) attrs() Attrs { return Attrs{POSIX: f.POSIX()} }

// newAttrs are the attributes to record for a new file of st_mode mode created by caller at
// time now (see Caller).
func (f *FS) newAttrs(caller Caller, mode uint32, now time.Time) posixmd.Attrs {
	pa := posixmd.Attrs{Mtime: now}
	if !f.POSIX() {
		return pa
	}
	pa.Mode, pa.HasMode = mode&(syscall.S_IFMT|0o7777), true
	if pa.Type() == 0 {
		pa.Mode &= 0o7777
	}
	if caller.Known {
		if caller.UID != f.cfg.UID {
			pa.UID, pa.HasUID = caller.UID, true
		}
		if caller.GID != f.cfg.GID {
			pa.GID, pa.HasGID = caller.GID, true
		}
	}
	return pa
}

// Incarnation is the inode generation of the path p: it moves on each time the path's file
// is removed or renamed away, so that a new file at the same path is a new inode even while
// the old one is still open.
func (c *Conn) Incarnation(p string) uint64 {
	g, _ := c.fs.incarnation.Get(MetaKey(c.Name, p))
	return g
}

// NewIncarnation moves the path's inode generation on.
func (c *Conn) NewIncarnation(p string) {
	key := MetaKey(c.Name, p)
	c.fs.mu.Lock()
	defer c.fs.mu.Unlock()
	g, _ := c.fs.incarnation.Get(key)
	c.fs.incarnation.Add(key, g+1)
}

// logHidden reports once per name that an object or prefix is not shown.
func (f *FS) logHidden(c *Conn, hidden []Hidden) {
	if len(hidden) == 0 {
		return
	}
	f.mu.Lock()
	var fresh []Hidden
	for _, h := range hidden {
		k := MetaKey(c.Name, h.Name)
		if _, ok := f.hiddenLogged[k]; ok {
			continue
		}
		if len(f.hiddenLogged) < maxHiddenLogged {
			f.hiddenLogged[k] = struct{}{}
		}
		fresh = append(fresh, h)
	}
	f.mu.Unlock()
	for _, h := range fresh {
		if h.Reason == reservedReason {
			continue // expected, not news
		}
		f.log.Info("object not shown in the mount", "connection", c.Name, "bucket", c.bucket.Name(), "name", h.Name, "reason", h.Reason)
	}
}

// under reports whether path p is below the directory dir ("": the root, everything is).
func under(p, dir string) bool {
	return dir == "" || strings.HasPrefix(p, dir+"/")
}

// stagedUnder returns the files with local state below the directory dir.
func (c *Conn) stagedUnder(dir string) []*File {
	c.mu.Lock()
	all := make([]*File, 0, len(c.staged))
	for f := range c.staged {
		all = append(all, f)
	}
	c.mu.Unlock()
	out := all[:0]
	for _, f := range all {
		if under(f.Path(), dir) {
			out = append(out, f)
		}
	}
	return out
}

// allStaged returns the files with local state of every connection.
func (f *FS) allStaged() []*File {
	f.mu.Lock()
	conns := append([]*Conn(nil), f.conns...)
	f.mu.Unlock()
	var out []*File
	for _, c := range conns {
		out = append(out, c.stagedUnder("")...)
	}
	return out
}

// staleParts is the age after which anyone's temporary upload parts are considered abandoned.
const staleParts = 24 * time.Hour

// CleanupTempParts deletes the temporary upload parts this daemon's owner id left in every
// connection (after a crash or kill), and anyone's parts older than a day, and reports how
// many it removed. Call it before mounting: parts of live uploads of the same owner go too.
func (f *FS) CleanupTempParts(ctx context.Context) (int, error) {
	if f.cfg.ReadOnly {
		return 0, nil
	}
	total := 0
	var errs []error
	f.mu.Lock()
	conns := append([]*Conn(nil), f.conns...)
	f.mu.Unlock()
	for _, c := range conns {
		n, err := transfer.CleanupParts(ctx, c.View(), f.cfg.Upload.Owner, staleParts)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %q: %w", c.Name, err))
		}
	}
	return total, errors.Join(errs...)
}

// SyncAll uploads every file with changes not yet uploaded (open or not), and stores the
// directories' pending times, for a clean unmount. It returns the failures, joined; each is
// logged, and the data of failed files is lost when the process exits.
func (f *FS) SyncAll(ctx context.Context) error {
	f.flushDirTimes(ctx)
	var errs []error
	for _, file := range f.allStaged() {
		if err := file.Sync(ctx); err != nil {
			f.log.Error("unmount: upload failed; this file's changes are lost", "connection", file.c.Name, "path", file.Path(), "err", err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Pending reports how many files have changes not yet uploaded.
func (f *FS) Pending() int {
	n := 0
	for _, file := range f.allStaged() {
		if file.Dirty() {
			n++
		}
	}
	return n
}

// moveRegistered gives every node registered at src (tree: and below it, src is a
// directory) the path it has under dst, replacing what was registered there, and tells each
// its new path and what the rename made of its object (moved, by new path).
func (c *Conn) moveRegistered(src, dst string, tree bool, moved map[string]Info) {
	c.mu.Lock()
	nodes := map[string]Node{}
	for p, n := range c.nodes {
		if p == src {
			nodes[dst] = n
		} else if tree && strings.HasPrefix(p, src+"/") {
			nodes[dst+p[len(src):]] = n
		} else {
			continue
		}
		delete(c.nodes, p)
	}
	maps.Copy(c.nodes, nodes)
	c.mu.Unlock()
	for p, n := range nodes {
		info, ok := moved[p]
		switch n := n.(type) {
		case *File:
			n.moved(p, info, ok)
		case *Dir:
			n.moved(p)
		case *Leaf:
			n.moved(p, info, ok, !tree)
		}
	}
}

// forgetPath unregisters whatever is registered at p (a name that is gone, or is about to be
// replaced by a rename).
func (c *Conn) forgetPath(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.nodes, p)
}

// replace registers n at p and returns what it replaced.
func (c *Conn) replace(p string, n Node) (old Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old, c.nodes[p] = c.nodes[p], n
	return old
}

// unregister removes n from p if it is what is registered there.
func (c *Conn) unregister(p string, n Node) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodes[p] == n {
		delete(c.nodes, p)
	}
}

// removed records that the entry at p is gone: the lookup cache forgets what was below it and
// caches the absence, the path's inode generation moves on, and the parent's listing and
// times change.
func (c *Conn) removed(p string) {
	key := MetaKey(c.Name, p)
	c.fs.meta.ForgetTree(key)
	c.fs.meta.PutMissing(key)
	c.NewIncarnation(p)
	c.noteChange(p, nil)
}

// noteChange records a change made through the mount to the entry at p (info nil: removed)
// in its parent directory, if the kernel knows it: its cached listing and its times.
func (c *Conn) noteChange(p string, info *Info) {
	if d, name := c.parent(p); d != nil {
		d.noteChange(name, info)
	}
}

// noteInParent records in the parent's cached listing only (not its times) that the entry at p
// now has info: a node made again from that listing must show what this mount changed.
func (c *Conn) noteInParent(p string, info Info) {
	if d, name := c.parent(p); d != nil {
		d.noteListing(name, &info)
	}
}

// parent returns the registered directory holding the entry at p (nil: none, or p is the
// root) and the entry's name in it.
func (c *Conn) parent(p string) (*Dir, string) {
	if p == "" {
		return nil, ""
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d, _ := c.nodes[parentOf(p)].(*Dir)
	return d, baseOf(p)
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func baseOf(p string) string { return p[strings.LastIndexByte(p, '/')+1:] }

// objectOf is the cache identity of generation info of the file at path p: the generation
// its bytes are cached under (Info.BytesGen).
func (c *Conn) objectOf(p string, info Info) cache.Object {
	return cache.Object{Bucket: c.bucket.Name(), Name: c.objs.Name(p), Generation: info.BytesGen(), Size: info.Size,
		CRC32C: info.CRC, HasCRC32C: info.HasCRC}
}

// sourceOf is where the cache fetches the bytes of generation info: the bucket, asked for
// info.Gen when the cache knows those bytes as generation info.DataGen's.
func (c *Conn) sourceOf(info Info) cache.Source {
	if info.DataGen == 0 || info.DataGen == info.Gen {
		return c.bucket
	}
	return regenSource{b: c.bucket, from: info.DataGen, to: info.Gen}
}

// regenSource reads generation to when asked for generation from: the same bytes under the
// generation a metadata patch gave the object.
type regenSource struct {
	b        store.Bucket
	from, to int64
}

func (s regenSource) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	if gen == s.from {
		gen = s.to
	}
	return s.b.NewRangeReader(ctx, name, gen, off, n)
}
