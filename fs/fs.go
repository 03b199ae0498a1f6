package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/sync/semaphore"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
	"github.com/plxfs/plxfs/vfs"
)

// Defaults for the zero values of Options.
const (
	DefaultTTL              = 60 * time.Second
	DefaultStatCacheEntries = 100_000
	DefaultNegCacheEntries  = 20_000
	DefaultFileMode         = 0o644
	DefaultDirMode          = 0o755
)

// Connection is one connection to mount: a directory named Name showing the objects of Bucket
// under Prefix.
type Connection struct {
	Name string
	// Bucket is the whole bucket, not limited to Prefix: cache keys use full object names so
	// that two connections on one bucket share cached chunks.
	Bucket store.Bucket
	// Prefix is "" or a normalised prefix "a/b/".
	Prefix string
}

// Options configure a filesystem. Zero values select the documented defaults.
type Options struct {
	Connections []Connection
	// Cache serves every read of object bytes. Required.
	Cache *cache.Cache
	// StagingDir holds the local files that stage writes until they are uploaded. Required
	// unless ReadOnly.
	StagingDir string
	// TTL bounds how long metadata (lookups, attributes, listings, negative lookups) is reused
	// without asking the bucket, here and in the kernel (entry and attribute timeouts). 0
	// selects DefaultTTL; a negative value disables metadata caching.
	TTL time.Duration
	// StatCacheEntries and NegCacheEntries bound the positive and negative lookup caches
	// (0: DefaultStatCacheEntries, DefaultNegCacheEntries).
	StatCacheEntries, NegCacheEntries int
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// NoPassthrough keeps every read in the daemon. By default, on a ReadOnly mount where the
	// kernel offers FUSE passthrough (Linux 6.9 or later, daemon running as root), a file whose
	// object is wholly cached is read by the kernel straight from its cache file. (Not on a
	// read-write mount: the kernel admits no open of a file beside its passthrough opens but
	// another passthrough open, and a writer's must not be one.)
	NoPassthrough bool
	// UID and GID own every file (0: root). FileMode and DirMode are the permission bits of
	// files and directories (0: 0644 and 0755).
	UID, GID          uint32
	FileMode, DirMode uint32
	// NoPOSIXMetadata turns off POSIX attributes kept in object metadata (see package
	// posixmd): every file then has UID, GID and FileMode or DirMode, chmod and chown are
	// accepted and ignored, directory times are not stored and mknod makes regular files only.
	// Modification times are kept either way.
	NoPOSIXMetadata bool
	// Upload tunes uploads (chunk size, compose threshold, part size, workers); Upload.Owner
	// names this daemon's temporary parts (see CleanupTempParts).
	Upload transfer.Options
	// Logger receives one line per failed operation and notices (hidden names). Default
	// slog.Default().
	Logger *slog.Logger
	// Observer is told what only the filesystem sees (uploads, bytes the read cache served),
	// for metrics. Default: nobody.
	Observer Observer
	// Now is the clock (tests). Default time.Now.
	Now func() time.Time
}

// Observer receives the events that only the filesystem sees. metrics.Metrics implements it.
// Methods are called from many goroutines at once and must not block.
type Observer interface {
	// UploadStarted is called when a file's upload starts.
	UploadStarted()
	// UploadFinished is called once per UploadStarted, with the file's size and the outcome.
	UploadFinished(bytes int64, err error)
	// CacheServed is called after the read cache returned n bytes for a read.
	CacheServed(n int64)
}

type nopObserver struct{}

func (nopObserver) UploadStarted()              {}
func (nopObserver) UploadFinished(int64, error) {}
func (nopObserver) CacheServed(int64)           {}

// FS is a mountable plxfs filesystem: a root directory with one directory per connection.
type FS struct {
	// Constant after New.
	opts    Options
	log     *slog.Logger
	conns   []*conn
	meta    *metaCache
	started time.Time
	root    *rootNode

	// passthrough: the kernel accepted a backing file at mount (see TuneMount).
	passthrough atomic.Bool
	// canSplice: a reply of kernelTransfer bytes fits a pipe, so reads may be answered with
	// spans of the cache (see spanResult); otherwise go-fuse would fail, and log, every splice.
	canSplice bool
	// spans counts spliced replies in flight; reaper closes go-fuse's idle splice pipes
	// (see spanDone). reapMu guards reaper.
	spans  atomic.Int64
	reapMu sync.Mutex
	reaper *time.Timer

	// mu guards the fields below. Lock order: node locks before FS.mu (see doc.go).
	mu           sync.Mutex
	hiddenLogged map[string]struct{}        // names already reported as hidden (bounded)
	incarnation  *lru.Cache[string, uint64] // StableAttr.Gen of a path after unlink/rename-away
	staged       map[*staging]stageRef      // every staging file, with its owner, for SyncAll
	dirTimes     map[*dirNode]struct{}      // directories whose new times are not stored yet (see dirNode.touched)

	partSlots *semaphore.Weighted // bounds the parts of streamed uploads in flight (Upload.Workers)

	// gate refuses new changes on a read-only mount, and once StopWrites started the drain.
	gate *vfs.Gate
}

// StopWrites makes the mount refuse new changes (creating, opening for write, namespace
// operations) with EROFS, as at shutdown: files already open keep their staged data, which
// SyncAll uploads.
func (f *FS) StopWrites() { f.gate.StopWrites() }

// readOnly reports whether changes are refused: a --read-only mount, or one shutting down.
func (f *FS) readOnly() bool { return f.gate.Refused() != nil }

// conn is a mounted connection.
type conn struct {
	name   string
	bucket store.Bucket // whole bucket
	prefix string
	view   store.Bucket  // store.WithPrefix(bucket, prefix): the connection's view, for uploads
	objs   *vfs.Objects  // the core's namespace of the connection: object names, moves, deletes
	up     *vfs.Uploader // the core's upload hand-off for the connection's staged files
}

// maxHiddenLogged bounds the set of hidden names remembered so that each is logged once.
const maxHiddenLogged = 10_000

// maxIncarnations bounds the remembered inode generations of removed paths. An evicted entry
// only matters if a file removed that long ago is still open when its path is reused.
const maxIncarnations = 1 << 16

// New checks opts and builds the filesystem (nothing is mounted yet).
func New(opts Options) (*FS, error) {
	if len(opts.Connections) == 0 {
		return nil, errors.New("fs: no connections to mount")
	}
	if opts.Cache == nil {
		return nil, errors.New("fs: Options.Cache is required")
	}
	if !opts.ReadOnly && opts.StagingDir == "" {
		return nil, errors.New("fs: Options.StagingDir is required for a writable mount")
	}
	if opts.Observer == nil {
		opts.Observer = nopObserver{}
	}
	if opts.TTL == 0 {
		opts.TTL = DefaultTTL
	}
	if opts.StatCacheEntries <= 0 {
		opts.StatCacheEntries = DefaultStatCacheEntries
	}
	if opts.NegCacheEntries <= 0 {
		opts.NegCacheEntries = DefaultNegCacheEntries
	}
	if opts.FileMode == 0 {
		opts.FileMode = DefaultFileMode
	}
	if opts.DirMode == 0 {
		opts.DirMode = DefaultDirMode
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Upload.Logger == nil {
		opts.Upload.Logger = opts.Logger
	}
	if !opts.ReadOnly {
		if err := os.MkdirAll(opts.StagingDir, 0o700); err != nil {
			return nil, fmt.Errorf("fs: staging directory: %w", err)
		}
	}
	inc, err := lru.New[string, uint64](maxIncarnations)
	if err != nil {
		return nil, err
	}
	f := &FS{
		opts:         opts,
		log:          opts.Logger,
		gate:         vfs.NewGate(opts.ReadOnly),
		meta:         newMetaCache(opts.TTL, opts.StatCacheEntries, opts.NegCacheEntries, opts.Now),
		started:      opts.Now(),
		hiddenLogged: map[string]struct{}{},
		incarnation:  inc,
		staged:       map[*staging]stageRef{},
		dirTimes:     map[*dirNode]struct{}{},
		partSlots:    semaphore.NewWeighted(int64(uploadWorkers(opts.Upload))),
		canSplice:    pipeFits(kernelTransfer),
	}
	seen := map[string]bool{}
	for _, c := range opts.Connections {
		if err := connspec.SegmentOK(c.Name); err != nil {
			return nil, fmt.Errorf("fs: connection name %q cannot be a directory name: %w", c.Name, err)
		}
		if seen[c.Name] {
			return nil, fmt.Errorf("fs: connection %q given twice", c.Name)
		}
		seen[c.Name] = true
		if c.Bucket == nil {
			return nil, fmt.Errorf("fs: connection %q has no bucket", c.Name)
		}
		f.conns = append(f.conns, f.newConn(c))
	}
	f.root = &rootNode{fsys: f}
	return f, nil
}

// newConn makes the mounted connection of c, with the core's namespace and uploader.
func (f *FS) newConn(c Connection) *conn {
	objs := vfs.NewObjects(c.Bucket, c.Prefix)
	view := store.WithPrefix(c.Bucket, c.Prefix)
	up := &vfs.Uploader{Objects: objs, View: view, Options: f.opts.Upload, Slots: f.partSlots,
		Observer: f.opts.Observer, Log: f.log.With("connection", c.Name), Now: f.now}
	return &conn{name: c.Name, bucket: c.Bucket, prefix: c.Prefix, view: view, objs: objs, up: up}
}

// uploadWorkers is the bound on parts in flight: Upload.Workers, or transfer's default.
func uploadWorkers(o transfer.Options) int {
	if o.Workers > 0 {
		return o.Workers
	}
	return transfer.DefaultWorkers
}

// Root is the root node, for fusefs.Mount.
func (f *FS) Root() fusefs.InodeEmbedder { return f.root }

// MountOptions are the mount-time choices that are not filesystem behaviour.
type MountOptions struct {
	// AllowOther lets users other than the one who mounted access the mount.
	AllowOther bool
	// Debug logs every FUSE request (very verbose).
	Debug bool
}

// pipeFits reports whether a pipe can hold a spliced reply of n bytes with its header and
// the spare page go-fuse adds, within fs.pipe-max-size (1 MiB by default; only
// CAP_SYS_RESOURCE may exceed it).
func pipeFits(n int) bool {
	b, err := os.ReadFile("/proc/sys/fs/pipe-max-size")
	if err != nil {
		return false
	}
	max, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return err == nil && n+2*os.Getpagesize() <= max
}

// kernelTransfer is the largest read and write request: big requests amortise the
// per-request cost of FUSE. 1 MiB is the kernel's maximum, but a spliced reply (header, data
// and a spare page) must fit one pipe, at most 1 MiB by default (fs.pipe-max-size): 8 KiB less.
const kernelTransfer = 1<<20 - 8<<10

// kernelReadahead is the kernel's readahead window on the mount: four requests of 1 MiB in
// flight for a sequential reader, so that chunk-file reads and fetches overlap. (Measured on
// the benchmark's 2-core machine: 1 MiB leaves one request in flight at a time; 16 MiB was
// slower than 4 MiB.)
const kernelReadahead = 4 << 20

// FuseOptions returns the go-fuse options for mounting f: kernel timeouts equal to the TTL,
// 1 MiB requests and readahead, direct mount as root.
func (f *FS) FuseOptions(mo MountOptions) *fusefs.Options {
	ttl := max(f.opts.TTL, 0)
	opts := &fusefs.Options{
		EntryTimeout:    &ttl,
		AttrTimeout:     &ttl,
		NegativeTimeout: &ttl,
		UID:             f.opts.UID,
		GID:             f.opts.GID,
		MountOptions: fuse.MountOptions{
			FsName:       "plxfs",
			Name:         "plxfs",
			AllowOther:   mo.AllowOther,
			Debug:        mo.Debug,
			MaxWrite:     kernelTransfer,
			MaxReadAhead: kernelTransfer,
			DirectMount:  os.Geteuid() == 0,
			// No extended attributes: ENOSYS makes the kernel stop asking (ls -l would
			// otherwise send a getxattr per entry).
			DisableXAttrs: true,
			// Sequential reads are answered by splicing from the cache's data file (see
			// spanResult), which needs a reply to fit a pipe: see kernelTransfer.
			DisableSplice: false,
			// The kernel checks permissions against the uid/gid/mode plxfs reports.
			Options: []string{"default_permissions"},
		},
	}
	if f.opts.ReadOnly {
		opts.MountOptions.Options = append(opts.MountOptions.Options, "ro")
	}
	return opts
}

// Mount mounts f at mountpoint and starts serving it. The caller unmounts with
// server.Unmount after SyncAll.
func (f *FS) Mount(mountpoint string, mo MountOptions) (*fuse.Server, error) {
	server, err := fusefs.Mount(mountpoint, f.root, f.FuseOptions(mo))
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	f.TuneMount(server, mountpoint)
	return server, nil
}

// TuneMount adjusts the kernel's side of a live mount of f: it raises the readahead window
// (see raiseReadahead) and turns passthrough on where the kernel allows it. Mount calls it; a
// caller that builds its own fuse.Server from FuseOptions and Root must call it once the mount
// is up, or sequential reads arrive in 128 KiB requests and every read goes through plxfs.
func (f *FS) TuneMount(server *fuse.Server, mountpoint string) {
	if err := raiseReadahead(mountpoint, kernelReadahead); err != nil {
		f.log.Warn("kernel readahead stays at its default (128 KiB), so sequential reads are slower; it needs root", "err", err)
	}
	if f.opts.NoPassthrough {
		return
	}
	if !f.opts.ReadOnly {
		f.log.Info("FUSE passthrough is off on a read-write mount: every read goes through plxfs (mount with --read-only to let the kernel read wholly cached files itself)")
		return
	}
	if err := probePassthrough(server, f.opts.Cache.Dir()); err != nil {
		f.log.Info("FUSE passthrough is off: every read goes through plxfs (it needs Linux 6.9 or later and root)", "err", err)
		return
	}
	f.passthrough.Store(true)
	f.log.Info("FUSE passthrough is on: the kernel reads files whose objects are wholly cached straight from the cache")
}

// probePassthrough registers a file of the cache's file system as a backing file with the
// kernel, and unregisters it: what every passthrough open will do.
func probePassthrough(server *fuse.Server, dir string) error {
	probe, err := os.CreateTemp(dir, "passthrough-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(probe.Name())
	defer probe.Close()
	id, errno := server.RegisterBackingFd(&fuse.BackingMap{Fd: int32(probe.Fd())})
	if errno != 0 {
		return errno
	}
	if errno := server.UnregisterBackingFd(id); errno != 0 {
		return errno
	}
	return nil
}

// raiseReadahead sets the kernel readahead window of the mount's backing device to n bytes.
// The kernel caps a FUSE mount's readahead at the device default (128 KiB) whatever
// max_readahead says, so without this every sequential read arrives in 128 KiB requests. It
// needs root (sysfs); failure only costs speed.
func raiseReadahead(mountpoint string, n int) error {
	var st syscall.Stat_t
	if err := syscall.Stat(mountpoint, &st); err != nil {
		return err
	}
	major, minor := (st.Dev>>8)&0xfff|(st.Dev>>32)&^0xfff, st.Dev&0xff|(st.Dev>>12)&^0xff
	p := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", major, minor)
	return os.WriteFile(p, []byte(strconv.Itoa(n>>10)), 0)
}

// staleParts is the age after which anyone's temporary upload parts are considered abandoned.
const staleParts = 24 * time.Hour

// CleanupTempParts deletes the temporary upload parts this daemon's owner id left in every
// connection (after a crash or kill), and anyone's parts older than a day, and reports how
// many it removed. Call it before mounting: parts of live uploads of the same owner go too.
func (f *FS) CleanupTempParts(ctx context.Context) (int, error) {
	if f.opts.ReadOnly {
		return 0, nil
	}
	total := 0
	var errs []error
	for _, c := range f.conns {
		n, err := transfer.CleanupParts(ctx, c.view, f.opts.Upload.Owner, staleParts)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("connection %q: %w", c.name, err))
		}
	}
	return total, errors.Join(errs...)
}

// logHidden reports once per name that an object or prefix is not shown.
func (f *FS) logHidden(c *conn, hidden []hiddenName) {
	if len(hidden) == 0 {
		return
	}
	f.mu.Lock()
	var fresh []hiddenName
	for _, h := range hidden {
		k := metaKey(c.name, h.Name)
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
		if h.Reason == "reserved for plxfs's temporary upload parts" {
			continue // expected, not news
		}
		f.log.Info("object not shown in the mount", "connection", c.name, "bucket", c.bucket.Name(), "name", h.Name, "reason", h.Reason)
	}
}

// genOf is the StableAttr.Gen for a path: it changes each time the path's node is removed or
// renamed away, so that a new file at the same path is a new inode even while the old one is
// still open.
func (f *FS) genOf(key string) uint64 {
	g, _ := f.incarnation.Get(key)
	return g
}

func (f *FS) bumpGen(key string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, _ := f.incarnation.Get(key)
	f.incarnation.Add(key, g+1)
}

// now is the filesystem clock.
func (f *FS) now() time.Time { return f.opts.Now() }

// ttl is the metadata TTL (0 when caching is off).
func (f *FS) ttl() time.Duration { return max(f.opts.TTL, 0) }

// fresh reports whether something fetched at t is still within the TTL.
func (f *FS) fresh(t time.Time) bool {
	return f.opts.TTL > 0 && !t.IsZero() && f.now().Before(t.Add(f.opts.TTL))
}

// setTimeouts lets the kernel keep an entry learnt at time at for what is left of the TTL, so
// that reused metadata is never older than one TTL. (A zero timeout would be replaced by
// go-fuse's default, the full TTL; the minimum is therefore one millisecond.)
func (f *FS) setTimeouts(out *fuse.EntryOut, at time.Time) {
	if f.opts.TTL <= 0 {
		return
	}
	left := max(at.Add(f.opts.TTL).Sub(f.now()), time.Millisecond)
	out.SetEntryTimeout(left)
	out.SetAttrTimeout(left)
}

// fillAttr fills a FUSE attribute for ino from info: the attributes recorded in the object's
// metadata where there are some (and POSIX metadata is on), the mount's defaults otherwise.
func (f *FS) fillAttr(ino uint64, info objInfo, out *fuse.Attr) {
	out.Ino = ino
	out.Uid, out.Gid = f.opts.UID, f.opts.GID
	out.Blksize = kernelTransfer
	mtime := info.Mtime
	if mtime.IsZero() {
		mtime = f.started
	}
	atime, ctime := mtime, mtime
	pa := info.Posix
	if f.posixOn() {
		if pa.HasUID {
			out.Uid = pa.UID
		}
		if pa.HasGID {
			out.Gid = pa.GID
		}
		if !pa.Atime.IsZero() {
			atime = pa.Atime
		}
		if info.Ctime.After(ctime) {
			ctime = info.Ctime
		}
	} else {
		pa = posixmd.Attrs{}
	}
	perm := func(def uint32) uint32 {
		if pa.HasMode {
			return pa.Mode & 0o7777
		}
		return def
	}
	out.SetTimes(&atime, &mtime, &ctime)
	out.Nlink = 1
	switch info.Kind {
	case kindDir:
		out.Mode = syscall.S_IFDIR | perm(f.opts.DirMode)
		out.Size = 4096 // unknown subdirectory count: nlink 1 tells find(1) not to rely on it
	case kindSymlink:
		out.Mode = syscall.S_IFLNK | 0o777
		out.Size = uint64(len(info.Target))
	case kindSpecial:
		out.Mode = info.Posix.Type() | perm(f.opts.FileMode)
		out.Rdev = info.Posix.Rdev
	default:
		out.Mode = syscall.S_IFREG | perm(f.opts.FileMode)
		out.Size = uint64(max(info.Size, 0))
		out.Blocks = (out.Size + 511) / 512
	}
}

// statfsOut reports a large, mostly free filesystem: GCS has no capacity to report, and tools
// such as cp and rsync refuse to write when they see no free space.
func statfsOut(out *fuse.StatfsOut) {
	const blocks = 1 << 40 // 1 PiB in 1 KiB blocks
	out.Bsize = 1024
	out.Frsize = 1024
	out.Blocks = blocks
	out.Bfree = blocks
	out.Bavail = blocks
	out.Files = 1 << 30
	out.Ffree = 1 << 30
	out.NameLen = 255
}
