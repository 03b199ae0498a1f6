package fs

import (
	"cmp"
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

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
	"github.com/plxfs/plxfs/vfs"
)

// Defaults for the zero values of Options.
const (
	DefaultTTL              = vfs.DefaultTTL
	DefaultStatCacheEntries = vfs.DefaultStatCacheEntries
	DefaultNegCacheEntries  = vfs.DefaultNegCacheEntries
	DefaultFileMode         = vfs.DefaultFileMode
	DefaultDirMode          = vfs.DefaultDirMode
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

// Observer receives the events that only the filesystem sees (vfs.Observer: uploads, bytes
// the read cache served). metrics.Metrics implements it. Methods are called from many
// goroutines at once and must not block.
type Observer = vfs.Observer

// FS is a mountable plxfs filesystem: a root directory with one directory per connection.
// The filesystem itself is the core's (package vfs); FS is its FUSE adapter.
type FS struct {
	// Constant after New.
	opts  Options
	log   *slog.Logger
	core  *vfs.FS
	conns []*conn
	root  *rootNode

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
}

// StopWrites makes the mount refuse new changes (creating, opening for write, namespace
// operations) with EROFS, as at shutdown: files already open keep their staged data, which
// SyncAll uploads.
func (f *FS) StopWrites() { f.core.StopWrites() }

// SyncAll uploads every file with changes not yet uploaded (open or not), and stores the
// directories' pending times, for a clean unmount (vfs.FS.SyncAll). It returns the failures,
// joined; each is logged.
func (f *FS) SyncAll(ctx context.Context) error { return f.core.SyncAll(ctx) }

// Pending reports how many files have changes not yet uploaded.
func (f *FS) Pending() int { return f.core.Pending() }

// conn is a mounted connection.
type conn struct {
	name string
	core *vfs.Conn
}

// New checks opts and builds the filesystem (nothing is mounted yet).
func New(opts Options) (*FS, error) {
	if len(opts.Connections) == 0 {
		return nil, errors.New("fs: no connections to mount")
	}
	core, err := vfs.New(vfs.Config{Cache: opts.Cache, StagingDir: opts.StagingDir, TTL: opts.TTL,
		StatCacheEntries: opts.StatCacheEntries, NegCacheEntries: opts.NegCacheEntries,
		ReadOnly: opts.ReadOnly, NoPOSIXMetadata: opts.NoPOSIXMetadata, UID: opts.UID, GID: opts.GID,
		FileMode: opts.FileMode, DirMode: opts.DirMode,
		Upload: opts.Upload, Logger: opts.Logger, Observer: opts.Observer, Now: opts.Now})
	if err != nil {
		return nil, fmt.Errorf("fs: %w", err)
	}
	f := &FS{opts: opts, log: cmp.Or(opts.Logger, slog.Default()), core: core, canSplice: pipeFits(kernelTransfer)}
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
		f.conns = append(f.conns, &conn{name: c.Name, core: core.Connect(c.Name, c.Bucket, c.Prefix)})
	}
	f.root = &rootNode{fsys: f}
	return f, nil
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
	ttl := f.core.TTL()
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

// CleanupTempParts deletes the temporary upload parts this daemon's owner id left in every
// connection (after a crash or kill), and anyone's parts older than a day, and reports how
// many it removed (vfs.FS.CleanupTempParts). Call it before mounting.
func (f *FS) CleanupTempParts(ctx context.Context) (int, error) { return f.core.CleanupTempParts(ctx) }

// setTimeouts lets the kernel keep an entry learnt at time at for what is left of the TTL, so
// that reused metadata is never older than one TTL. (A zero timeout would be replaced by
// go-fuse's default, the full TTL; the minimum is therefore one millisecond.)
func (f *FS) setTimeouts(out *fuse.EntryOut, at time.Time) {
	if f.core.TTL() <= 0 {
		return
	}
	left := max(at.Add(f.core.TTL()).Sub(f.core.Now()), time.Millisecond)
	out.SetEntryTimeout(left)
	out.SetAttrTimeout(left)
}

// fillAttr fills a FUSE attribute for ino from info (vfs.FS.Stat).
func (f *FS) fillAttr(ino uint64, info vfs.Info, out *fuse.Attr) {
	st := f.core.Stat(info)
	out.Ino, out.Mode, out.Uid, out.Gid, out.Rdev = ino, st.Mode, st.UID, st.GID, st.Rdev
	out.Size, out.Nlink, out.Blksize = st.Size, st.Nlink, kernelTransfer
	if st.Mode&syscall.S_IFMT == syscall.S_IFREG {
		out.Blocks = (st.Size + 511) / 512
	}
	out.SetTimes(&st.Atime, &st.Mtime, &st.Ctime)
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
