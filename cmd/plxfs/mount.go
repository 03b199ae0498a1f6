package main

// The mount and unmount commands: flags → fs.Options, the mount lifecycle (stale mountpoint
// cleanup, connection checks before anything is mounted, signals, pending uploads before the
// unmount) and exit codes. The filesystem itself is package fs.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/bucketstack"
	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/warmup"
)

const mountDescription = `mount shows every selected connection as a directory of MOUNTPOINT and runs in the
foreground until Ctrl-C, SIGTERM, 'plxfs unmount MOUNTPOINT' or --exit-on-file.

   plxfs mount --config connections.yaml [--connections ds1,ds2] /mnt/plx
   ls /mnt/plx                  # ds1  ds2
   ls -l /mnt/plx/ds1/train

Every connection is checked (credentials, bucket, one listing) before anything is mounted;
an unknown --connections name is an error. Reads go through a chunked disk cache under
--cache-dir that survives restarts; writes are staged there too and uploaded on fsync and
close (close returns an error if the upload failed). On SIGINT/SIGTERM pending uploads finish,
then the mount is removed. SEMANTICS.md says what each operation does.

A MOUNTPOINT that has files in it is refused (the mount would hide them) unless --nonempty.
As root the kernel mount is made directly; as another user fusermount3 must be installed.
A mountpoint left behind by a crashed daemon ("transport endpoint is not connected") is
cleaned up at start, or with 'plxfs unmount MOUNTPOINT'.`

func mountCommand() *cli.Command {
	return withCommonFlags(&cli.Command{
		Name:        "mount",
		Usage:       "mount the selected connections, one directory each (foreground)",
		ArgsUsage:   "MOUNTPOINT",
		Description: mountDescription,
		Flags: append(append(cacheFlags(), []cli.Flag{
			&cli.IntFlag{Name: "readahead", Value: cache.DefaultReadahead, Usage: "most chunks fetched into memory ahead of a sequential reader (each as parallel GETs sized to the link): the window starts at one chunk and doubles while the reader has to wait for bytes, within --prefetch-memory (0 disables)"},
			&cli.BoolFlag{Name: "verify-reads", Usage: "make a read of an object larger than a chunk wait until the whole object has been fetched and has passed its CRC32C check (chunks are otherwise served as they arrive, and checked once all have been seen)"},
			&cli.StringSliceFlag{Name: "warmup", Usage: "once mounted, fetch every object under `PATH` (CONNECTION/DIR, relative to the mountpoint) into the cache in the background, as plxfs warmup does (repeatable)"},
			&cli.IntFlag{Name: "warmup-workers", Value: warmup.DefaultWorkers, Usage: "objects --warmup reads at once (at most --prefetch-memory / --chunk-size)"},
			&cli.DurationFlag{Name: "ttl", Value: fs.DefaultTTL, Usage: "how long names, attributes and listings are reused before asking GCS again (0 disables caching)"},
			&cli.IntFlag{Name: "stat-cache-entries", Value: fs.DefaultStatCacheEntries, Usage: "bound on cached lookups (positive); negative lookups are bounded separately"},
			&cli.BoolFlag{Name: "read-only", Usage: "refuse every change with EROFS"},
			&cli.BoolFlag{Name: "passthrough", Value: true, Usage: "with --read-only, let the kernel read files whose objects are wholly cached straight from the cache (FUSE passthrough: Linux 6.9 or later, as root); --passthrough=false keeps every read in plxfs"},
			&cli.StringFlag{Name: "uid", Usage: "owner `UID` of files whose objects record none (default: the mounting user)"},
			&cli.StringFlag{Name: "gid", Usage: "group `GID` of files whose objects record none (default: the mounting user's group)"},
			&cli.StringFlag{Name: "file-mode", Value: "0644", Usage: "permission bits of files whose objects record none (octal)"},
			&cli.StringFlag{Name: "dir-mode", Value: "0755", Usage: "permission bits of directories whose placeholders record none (octal)"},
			&cli.BoolFlag{Name: "no-posix-metadata", Usage: "ignore the mode, owner and special-file type kept in object metadata (gsutil cp -P keys): every file gets --uid, --gid and --file-mode or --dir-mode, chmod and chown are accepted and ignored, mknod of FIFOs and devices is EPERM; modification times are kept either way"},
			&cli.BoolFlag{Name: "nonempty", Usage: "mount over a directory that has files (they are hidden while mounted, as with fusermount -o nonempty); without it such a mountpoint is refused"},
			&cli.BoolFlag{Name: "allow-other", Usage: "let other users access the mount (needs user_allow_other in /etc/fuse.conf when not root)"},
			&cli.StringFlag{Name: "upload-chunk-size", Value: "8MiB", Usage: "resumable-upload chunk `SIZE` (memory per upload in flight)"},
			&cli.StringFlag{Name: "compose-threshold", Value: "64MiB", Usage: "files of at least this `SIZE` upload as parallel parts joined by compose"},
			&cli.StringFlag{Name: "part-size", Value: "32MiB", Usage: "part `SIZE` of composed uploads"},
			&cli.IntFlag{Name: "upload-workers", Value: 4, Usage: "parallel requests per upload"},
			memoryLimitFlag("Keeps the daemon small (data lives on disk)."),
			&cli.StringFlag{Name: "ready-file", Usage: "create `FILE` once the mount is ready (see plxfs wait)"},
			&cli.StringFlag{Name: "exit-on-file", Usage: "unmount and exit once `FILE` exists (sidecars without native sidecar support)"},
			&cli.DurationFlag{Name: "grace-period", Value: 5 * time.Minute, Usage: "on SIGINT/SIGTERM, how long pending uploads may take before plxfs gives up on them and exits 1 (a second signal gives up at once); keep it below the pod's terminationGracePeriodSeconds"},
		}...), append(stackFlags(), observeFlags()...)...),
		Action: runMount,
	})
}

func unmountCommand() *cli.Command {
	return withCommonFlags(&cli.Command{
		Name:      "unmount",
		Aliases:   []string{"umount"},
		Usage:     "unmount a plxfs mount, also one left behind by a crashed daemon",
		ArgsUsage: "MOUNTPOINT",
		Description: `unmount removes the mount at MOUNTPOINT. A running daemon then uploads what is pending
and exits. If files are open the unmount fails with "busy"; --lazy detaches the mount at
once (it disappears when the last file is closed). A mount whose daemon is gone
("transport endpoint is not connected") is always detached.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "lazy", Aliases: []string{"z"}, Usage: "detach now even if files are open"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("unmount takes one MOUNTPOINT, got %d arguments", c.NArg())
			}
			mnt, err := filepath.Abs(c.Args().First())
			if err != nil {
				return usageErrorf("unmount %q: %v", c.Args().First(), err)
			}
			lazy := c.Bool("lazy")
			if stale, err := isStaleMount(mnt); err == nil && stale {
				lazy = true
			}
			if err := unmount(mnt, lazy); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "unmounted %s\n", mnt)
			return nil
		},
	})
}

// mountConfig is the mount command's flags, checked.
type mountConfig struct {
	mountpoint  string
	cacheDir    string
	cache       cache.Options
	fs          fs.Options
	mount       fs.MountOptions
	readyFile   string
	exitOnFile  string
	nonempty    bool                // mount over a directory with entries
	memoryLimit int64               // 0: none
	stack       bucketstack.Options // Metrics and Logger set by runMount
	grace       time.Duration
	// warmup are the --warmup paths, each CONNECTION or CONNECTION/DIR; warmupWorkers reads at once.
	warmup        []string
	warmupWorkers int
}

// parseMountFlags turns the flags into options; every error names its flag.
func parseMountFlags(c *cli.Context) (mountConfig, error) {
	var mc mountConfig
	if c.NArg() != 1 {
		return mc, usageErrorf("mount takes one MOUNTPOINT, got %d arguments", c.NArg())
	}
	mnt, err := filepath.Abs(c.Args().First())
	if err != nil {
		return mc, usageErrorf("MOUNTPOINT %q: %v", c.Args().First(), err)
	}
	mc.mountpoint = mnt
	if mc.cacheDir, mc.cache, err = parseCacheFlags(c); err != nil {
		return mc, err
	}
	if mc.cacheDir == mnt || strings.HasPrefix(mc.cacheDir, mnt+string(filepath.Separator)) {
		return mc, usageErrorf("--cache-dir %s is inside the mountpoint %s; put it on a local disk", mc.cacheDir, mnt)
	}
	mc.cache.Readahead = c.Int("readahead")
	if mc.cache.Readahead < 0 {
		return mc, usageErrorf("--readahead %d: use 0 (off) or a positive number of chunks", mc.cache.Readahead)
	}
	if mc.cache.Readahead == 0 {
		mc.cache.Readahead = -1 // cache.Options: negative disables; 0 would mean the default
	}
	mc.cache.VerifyReads = c.Bool("verify-reads")
	if mc.warmup, err = parseMountWarmup(c.StringSlice("warmup"), mnt); err != nil {
		return mc, err
	}
	if mc.warmupWorkers = c.Int("warmup-workers"); mc.warmupWorkers < 1 {
		return mc, usageErrorf("--warmup-workers %d: use 1 or more", mc.warmupWorkers)
	}

	if mc.stack, err = stackOptions(c); err != nil {
		return mc, err
	}
	mc.cache.FetchTimeout = mc.stack.OpTimeout
	if mc.grace = c.Duration("grace-period"); mc.grace <= 0 {
		return mc, usageErrorf("--grace-period %v: use a positive duration such as 2m", mc.grace)
	}

	mc.fs.TTL = c.Duration("ttl")
	if mc.fs.TTL < 0 {
		return mc, usageErrorf("--ttl %v: use 0 (no caching) or a positive duration such as 60s", mc.fs.TTL)
	}
	if mc.fs.TTL == 0 {
		mc.fs.TTL = -1 // fs.Options: negative disables; 0 would mean the default
	}
	mc.fs.StatCacheEntries = c.Int("stat-cache-entries")
	if mc.fs.StatCacheEntries <= 0 {
		return mc, usageErrorf("--stat-cache-entries %d: use a positive number", mc.fs.StatCacheEntries)
	}
	mc.fs.ReadOnly = c.Bool("read-only")
	mc.fs.NoPassthrough = !c.Bool("passthrough")
	mc.fs.StagingDir = filepath.Join(mc.cacheDir, "staging")
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	if s := c.String("uid"); s != "" {
		if uid, err = parseID("--uid", s); err != nil {
			return mc, err
		}
	}
	if s := c.String("gid"); s != "" {
		if gid, err = parseID("--gid", s); err != nil {
			return mc, err
		}
	}
	mc.fs.UID, mc.fs.GID = uid, gid
	mc.fs.NoPOSIXMetadata = c.Bool("no-posix-metadata")
	if mc.fs.FileMode, err = parseMode("--file-mode", c.String("file-mode")); err != nil {
		return mc, err
	}
	if mc.fs.DirMode, err = parseMode("--dir-mode", c.String("dir-mode")); err != nil {
		return mc, err
	}
	chunk, err := parseSize("--upload-chunk-size", c.String("upload-chunk-size"))
	if err != nil {
		return mc, err
	}
	if chunk%(256<<10) != 0 || chunk > 1<<30 {
		return mc, usageErrorf("--upload-chunk-size %s: use a multiple of 256KiB up to 1GiB", c.String("upload-chunk-size"))
	}
	mc.fs.Upload.ChunkSize = int(chunk)
	if mc.fs.Upload.ComposeThreshold, err = parseSize("--compose-threshold", c.String("compose-threshold")); err != nil {
		return mc, err
	}
	if mc.fs.Upload.PartSize, err = parseSize("--part-size", c.String("part-size")); err != nil {
		return mc, err
	}
	if mc.fs.Upload.Workers = c.Int("upload-workers"); mc.fs.Upload.Workers <= 0 {
		return mc, usageErrorf("--upload-workers %d: use a positive number", mc.fs.Upload.Workers)
	}
	mc.fs.Upload.Owner = mountOwner(mnt)
	if mc.memoryLimit, err = parseMemoryLimit(c); err != nil {
		return mc, err
	}
	mc.mount = fs.MountOptions{AllowOther: c.Bool("allow-other"), Debug: c.Bool("debug-fuse")}
	mc.nonempty = c.Bool("nonempty")
	mc.readyFile = c.String("ready-file")
	mc.exitOnFile = c.String("exit-on-file")
	return mc, nil
}

func parseID(flag, s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return 0, usageErrorf("%s %q: use a numeric id such as 1000", flag, s)
	}
	return uint32(n), nil
}

func parseMode(flag, s string) (uint32, error) {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 8, 32)
	if err != nil || n > 0o777 || n == 0 {
		return 0, usageErrorf("%s %q: use octal permission bits such as 0644 (at most 0777, not 0)", flag, s)
	}
	return uint32(n), nil
}

// mountOwner names the temporary upload parts of the daemon serving mnt on this host: stable
// across restarts, so that a restarted daemon deletes what a killed one left.
func mountOwner(mnt string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	h := sha256.Sum256([]byte(mnt))
	return "plxfs-mount-" + host + "-" + hex.EncodeToString(h[:4])
}

func runMount(c *cli.Context) error {
	keepRunningOnClosedOutput()
	mc, err := parseMountFlags(c)
	if err != nil {
		return err
	}
	rt, err := getRuntime(c)
	if err != nil {
		return err
	}
	errRing := captureErrors(rt)
	started := time.Now()
	log := rt.Logger()
	setMemoryLimit(mc.memoryLimit)
	conns, err := rt.Selected()
	if err != nil {
		return err
	}
	if len(conns) == 0 {
		return errors.New("no gcs connections to mount: check --config / $POLYAXON_CONNECTIONS_CATALOG and --connections")
	}
	for _, p := range mc.warmup {
		name, _, _ := strings.Cut(p, "/")
		if !slices.ContainsFunc(conns, func(c connspec.Connection) bool { return c.Name == name }) {
			return usageErrorf("--warmup %s: no connection %q in this mount (mounted: %s)", p, name, strings.Join(connNames(conns), ", "))
		}
	}
	if err := prepareMountpoint(mc.mountpoint, mc.nonempty, log); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		if _, err := exec.LookPath("fusermount3"); err != nil {
			if _, err2 := exec.LookPath("fusermount"); err2 != nil {
				return errors.New("mounting as a non-root user needs fusermount3 (Debian/Ubuntu: apt-get install fuse3) and it is not on $PATH; install it or run plxfs mount as root")
			}
		}
	}

	ctx := c.Context
	m := metrics.New()
	// Before the first bucket is made: the storage client counts into m, and every bucket gets
	// the mount's stack.
	mc.stack.Metrics, mc.stack.Logger = m, log
	rt.counters, rt.stack = m.StorageCounters(), mc.stack
	fsConns, err := checkMountConnections(ctx, rt, conns)
	if err != nil {
		return err
	}
	mc.cache.Logger = log
	mc.cache.OnChecksumMismatch = m.ChecksumMismatch
	ch, err := cache.Open(mc.cache)
	if err != nil {
		return err
	}
	defer ch.Close()
	m.Registry().MustRegister(metrics.NewCacheCollector(ch.Stats, mc.cache.MaxBytes))
	mc.fs.Observer = m
	mc.fs.Connections = fsConns
	mc.fs.Cache = ch
	mc.fs.Logger = log
	fsys, err := fs.New(mc.fs)
	if err != nil {
		return err
	}
	if n, err := fsys.CleanupTempParts(ctx); err != nil {
		log.Warn("could not remove temporary upload parts left by an earlier run", "err", err)
	} else if n > 0 {
		log.Info("removed temporary upload parts left by an earlier run", "objects", n)
	}

	status := &statusSource{Mountpoint: mc.mountpoint, ReadOnly: mc.fs.ReadOnly, Started: started,
		Connections: statusConnections(rt, conns), CacheDir: mc.cacheDir, CacheMax: mc.cache.MaxBytes,
		CacheStats: ch.Stats, Metrics: m, Errors: errRing, Pending: fsys.Pending}
	obs := observeOptionsFrom(c, mc.mountpoint, m, status.Status)
	obs.Changed = func(changes []control.Change) { forgetChanged(fsys, conns, changes, log) }
	warmOpts := warmup.Options{Workers: mc.warmupWorkers, MaxBytes: mc.cache.MaxBytes, Logger: log}
	obs.Warmup = serveWarmup(fsConns, ch, warmOpts, log)
	stopObs, err := startObservability(ctx, rt, obs)
	if err != nil {
		return err
	}
	defer stopObs()
	server, err := mountObserved(fsys, mc.mountpoint, mc.mount, m)
	if err != nil {
		return fmt.Errorf("%w%s", err, mountHint(err))
	}
	fsys.TuneMount(server, mc.mountpoint)
	served := make(chan struct{})
	go func() {
		server.Wait()
		close(served)
	}()
	names := make([]string, len(fsConns))
	for i, fc := range fsConns {
		names[i] = fc.Name
	}
	log.Info("mounted", "mountpoint", mc.mountpoint, "connections", strings.Join(names, ","),
		"cache_dir", mc.cacheDir, "cache_size", mc.cache.MaxBytes, "read_only", mc.fs.ReadOnly, "ttl", c.Duration("ttl"))
	if mc.readyFile != "" {
		if err := writeReadyFile(mc.readyFile); err != nil {
			log.Error("could not write the ready file", "err", err)
		}
		// A ready file must not outlive the mount it announces.
		defer os.Remove(mc.readyFile)
	}
	if len(mc.warmup) > 0 {
		wctx, stopWarmup := context.WithCancel(ctx)
		warmed := make(chan struct{})
		go func() {
			defer close(warmed)
			mountWarmups(wctx, mc.warmup, fsConns, ch, warmOpts, log)
		}()
		defer func() { stopWarmup(); <-warmed }() // before the cache closes
	}

	select {
	case <-ctx.Done():
		log.Info("signal received: uploading pending files, then unmounting", "pending", fsys.Pending())
	case <-exitOnFile(ctx, mc.exitOnFile, time.Second):
		log.Info("exit file found: uploading pending files, then unmounting", "file", mc.exitOnFile, "pending", fsys.Pending())
	case <-served:
		log.Info("unmounted from outside; uploading pending files", "pending", fsys.Pending())
	}
	// A second signal during shutdown detaches the mount at once. (Registered only now: the
	// first signal must not count as the second.)
	again := make(chan os.Signal, 1)
	signal.Notify(again, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(again)
	return shutdown(fsys, server, mc.mountpoint, served, again, mc.grace, log)
}

// unmounter is what shutdown needs of a fuse.Server.
type unmounter interface{ Unmount() error }

// shutdown uploads pending files, unmounts (lazily if the mount stays busy or a second signal
// comes), waits until the kernel lets go of the mount, and uploads what was written meanwhile.
// Uploads get grace in all; past it, or at a second signal, shutdown gives up on them and
// returns an error naming how many files were not uploaded (each failed one is logged).
func shutdown(fsys *fs.FS, server unmounter, mnt string, served <-chan struct{}, again <-chan os.Signal, grace time.Duration, log *slog.Logger) error {
	// giveUp closes when the grace period is over or a second signal comes: from then on
	// nothing waits for uploads or open files (the process exits; in-flight requests die with it,
	// and GCS never shows a partial object).
	giveUp := make(chan struct{})
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		select {
		case <-again:
			log.Warn("second signal: not waiting for pending uploads or open files any longer")
		case <-time.After(grace):
			log.Warn("grace period over: not waiting for pending uploads or open files any longer", "grace_period", grace)
		case <-finished:
			return
		}
		close(giveUp)
	}()
	syncAll := func() error {
		done := make(chan error, 1)
		go func() { done <- fsys.SyncAll(context.Background()) }()
		select {
		case err := <-done:
			return err
		case <-giveUp:
			if fsys.Pending() == 0 {
				return nil
			}
			return fmt.Errorf("%d files not uploaded within the --grace-period %v (or stopped by a second signal)", fsys.Pending(), grace)
		}
	}
	fsys.StopWrites()
	log.Info("taking no new changes (EROFS); uploading pending files", "pending", fsys.Pending(), "grace_period", grace)
	syncErr := syncAll()
	select {
	case <-served:
	default:
		err := server.Unmount()
		for attempt := 0; err != nil && attempt < 10; attempt++ {
			if attempt == 0 {
				log.Warn("mount is busy (files are open); retrying for 10s, signal again to detach now", "err", err)
			}
			select {
			case <-giveUp:
				attempt = 10
			case <-time.After(time.Second):
				err = server.Unmount()
			}
		}
		if err != nil {
			log.Warn("detaching the busy mount; it disappears when the last open file is closed", "mountpoint", mnt)
			if err := unmount(mnt, true); err != nil {
				log.Error("could not detach the mount", "err", err)
			}
		}
		select {
		case <-served:
		case <-giveUp:
		}
	}
	if syncErr == nil {
		syncErr = syncAll()
	}
	if syncErr != nil {
		log.Error("exiting with changes not uploaded: they are lost", "err", syncErr)
		return fmt.Errorf("unmounted, but some files could not be uploaded (see the log): %w", syncErr)
	}
	log.Info("unmounted", "mountpoint", mnt)
	return nil
}

// checkMountConnections opens each connection's bucket and lists one entry under its prefix,
// so that a wrong bucket, prefix or credential fails before anything is mounted.
func checkMountConnections(ctx context.Context, rt *runtime, conns []connspec.Connection) ([]fs.Connection, error) {
	out := make([]fs.Connection, 0, len(conns))
	for _, conn := range conns {
		b, err := rt.Bucket(ctx, conn)
		if err != nil {
			return nil, err
		}
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err = b.List(cctx, store.ListOptions{Prefix: conn.Prefix, Delimiter: "/", PageSize: 1})
		cancel()
		if err != nil {
			scope := rt.scope(conn)
			scope.Listing = true
			return nil, explainError(scope, fmt.Sprintf("listing %q before mounting (nothing was mounted)", conn.URL()), err)
		}
		out = append(out, fs.Connection{Name: conn.Name, Bucket: b, Prefix: conn.Prefix})
	}
	return out, nil
}

// prepareMountpoint checks that mnt is a directory that is not mounted and, unless nonempty,
// is empty (a mount would hide what is in it), and detaches a mount left behind by a crashed
// daemon.
func prepareMountpoint(mnt string, nonempty bool, log *slog.Logger) error {
	stale, err := isStaleMount(mnt)
	if err != nil {
		return err
	}
	if stale {
		log.Warn("the mountpoint holds a mount whose daemon is gone; detaching it", "mountpoint", mnt)
		if err := unmount(mnt, true); err != nil {
			return fmt.Errorf("%s: a mount left behind by a crashed daemon could not be removed: %w", mnt, err)
		}
	}
	fi, err := os.Stat(mnt)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("mountpoint %s does not exist: create it (mkdir -p %s)", mnt, mnt)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("mountpoint %s is not a directory", mnt)
	}
	if live, err := isFUSEMount(mnt); err == nil && live {
		return fmt.Errorf("%s is already a FUSE mount (another plxfs?); unmount it first: plxfs unmount %s", mnt, mnt)
	}
	if !nonempty {
		if names, err := firstEntries(mnt, 3); err != nil {
			return fmt.Errorf("mountpoint %s: %w", mnt, err)
		} else if len(names) > 0 {
			return usageErrorf("mountpoint %s is not empty (%s): the mount would hide its contents; use an empty directory, or --nonempty to mount over them", mnt, strings.Join(names, ", "))
		}
	}
	return nil
}

// firstEntries returns the names of up to n entries of dir, with "..." when there are more.
func firstEntries(dir string, n int) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(n + 1)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if len(names) > n {
		names = append(names[:n], "...")
	}
	return names, nil
}

// isStaleMount reports whether mnt is a FUSE mount whose daemon is gone. It asks statfs,
// which always reaches the daemon (a stat may be answered from the kernel's attribute cache).
func isStaleMount(mnt string) (bool, error) {
	var st syscall.Statfs_t
	err := syscall.Statfs(mnt, &st)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		return true, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return false, fmt.Errorf("mountpoint %s: %w", mnt, err)
	}
	return false, nil
}

// unmount removes the mount at mnt: umount2 as root (MNT_DETACH when lazy), fusermount3 -u
// otherwise.
func unmount(mnt string, lazy bool) error {
	if os.Geteuid() == 0 {
		flags := 0
		if lazy {
			flags = syscall.MNT_DETACH
		}
		err := syscall.Unmount(mnt, flags)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EBUSY):
			return fmt.Errorf("unmount %s: busy (files are open there); close them or use --lazy", mnt)
		case errors.Is(err, syscall.EINVAL):
			return fmt.Errorf("unmount %s: not a mountpoint", mnt)
		}
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return errors.New("unmounting as a non-root user needs fusermount3 (Debian/Ubuntu: apt-get install fuse3), which is not on $PATH")
		}
	}
	args := []string{"-u"}
	if lazy {
		args = []string{"-u", "-z"}
	}
	out, err := exec.Command(bin, append(args, mnt)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("unmount %s: %s: %s", mnt, filepath.Base(bin), strings.TrimSpace(string(out)))
	}
	return nil
}

// mountHint adds advice to common mount failures.
func mountHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "fusermount") && strings.Contains(msg, "not found"):
		return " (install fusermount3: apt-get install fuse3, or run as root)"
	case strings.Contains(msg, "/dev/fuse"):
		return " (is the fuse kernel module loaded, and /dev/fuse available in this container? Kubernetes: mount /dev/fuse and add SYS_ADMIN)"
	case strings.Contains(msg, "allow_other"):
		return " (--allow-other as a non-root user needs user_allow_other in /etc/fuse.conf)"
	}
	return ""
}
