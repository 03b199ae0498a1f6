package main

// The warmup command, and warming from the mount: --warmup PATH, and POST /warmup on the
// status socket, which plxfs warmup uses when a daemon holds the cache directory. The work
// itself is package warmup's.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/transfer"
	"github.com/plxfs/plxfs/warmup"
)

const warmupDescription = `warmup fetches every object under REMOTE (CONNECTION:PATH or gs://BUCKET/PATH) into the
read cache that 'plxfs mount' uses, so that a later mount with the same --cache-dir reads
them from local disk. A PATH naming one object warms that object.

   plxfs warmup --config connections.yaml ds:train
   plxfs warmup --dry-run ds:train      # objects, bytes, what is cached already, and whether it fits

Objects are read through the cache as a mount reads them (whole chunks, as parallel GETs
sized to the link), --workers at a time, within --prefetch-memory. Give the cache flags the
mount uses (--cache-dir, --cache-size, --chunk-size): chunks cached with another
--chunk-size are not used by the mount. Resumable: objects already cached (and checked) are
skipped, so an interrupted warmup just runs again. A REMOTE whose objects take more than
--cache-size is refused unless --force (the cache would evict the first objects warmed to
make room for the last).

While a 'plxfs mount' daemon holds the cache directory, warmup asks that daemon to do it
over its status socket (found among this user's daemons by its cache directory, or given
with --status-socket); the daemon's own cache flags and connections apply then, and it must
mount a connection on REMOTE's bucket. Ctrl-C stops the daemon's warmup too.

Exit codes: 0 everything cached, 1 some objects failed or the prefix does not fit, 2 usage error.`

// cacheFlags are the flags of the read cache, shared by mount and warmup.
func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-dir", EnvVars: []string{"PLXFS_CACHE_DIR"}, Usage: "`DIR` for cached chunks and staged writes (default: $XDG_CACHE_HOME/plxfs or ~/.cache/plxfs); one daemon per directory"},
		&cli.StringFlag{Name: "cache-size", Value: "10GiB", Usage: "bound on cached chunk bytes on disk (`SIZE` such as 10GiB, 500MiB)"},
		&cli.StringFlag{Name: "chunk-size", Value: "8MiB", Usage: "cache chunk `SIZE`: the fetch unit of sequential reads"},
		&cli.StringFlag{Name: "prefetch-memory", Value: "auto", Usage: "memory `SIZE` for chunks arriving from GCS and on their way to the cache (a hard bound, at least two chunks): more fills a faster link; auto is 64MiB, or a quarter of the cgroup memory limit (a pod's limits.memory) when that is less"},
	}
}

// parseCacheFlags reads cacheFlags: the cache directory (absolute) and the cache's options
// (Dir is its chunks directory).
func parseCacheFlags(c *cli.Context) (dir string, opts cache.Options, err error) {
	dir = c.String("cache-dir")
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return "", opts, usageErrorf("--cache-dir: no default (%v); give a directory", err)
		}
		dir = filepath.Join(base, "plxfs")
	}
	if dir, err = filepath.Abs(dir); err != nil {
		return "", opts, usageErrorf("--cache-dir: %v", err)
	}
	if opts.MaxBytes, err = parseSize("--cache-size", c.String("cache-size")); err != nil {
		return "", opts, err
	}
	if opts.ChunkSize, err = parseSize("--chunk-size", c.String("chunk-size")); err != nil {
		return "", opts, err
	}
	if opts.ChunkSize > opts.MaxBytes/4 {
		return "", opts, usageErrorf("--chunk-size %s is more than a quarter of --cache-size %s; use smaller chunks or a bigger cache", c.String("chunk-size"), c.String("cache-size"))
	}
	if opts.PrefetchMemory, err = parsePrefetchMemory(c.String("prefetch-memory")); err != nil {
		return "", opts, err
	}
	opts.Dir = filepath.Join(dir, "chunks")
	return dir, opts, nil
}

func warmupCommand() *cli.Command {
	return storageCommand(&cli.Command{
		Name:        "warmup",
		Usage:       "fetch every object under a remote path into the mount's read cache",
		ArgsUsage:   "REMOTE",
		Description: warmupDescription,
		Flags: append(cacheFlags(),
			&cli.IntFlag{Name: "workers", Value: warmup.DefaultWorkers, Usage: "`N` objects read at once (at most --prefetch-memory / --chunk-size)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print how many objects and bytes there are, how many are cached already and whether they fit --cache-size, and fetch nothing"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "warm a REMOTE that does not fit --cache-size (the first objects warmed get evicted)"},
			&cli.DurationFlag{Name: "op-timeout", Value: 30 * time.Second, Usage: "bound on each chunk fetch"},
			&cli.StringFlag{Name: "status-socket", EnvVars: []string{"PLXFS_STATUS_SOCKET"}, Usage: "the status socket `PATH` of the daemon that holds --cache-dir, when it was mounted with --status-socket"},
			quietFlag(),
		),
		Action: runWarmup,
	})
}

func runWarmup(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("warmup takes one REMOTE (CONNECTION:PATH or gs://BUCKET/PATH), got %d arguments", c.NArg())
	}
	dir, opts, err := parseCacheFlags(c)
	if err != nil {
		return err
	}
	workers := c.Int("workers")
	if workers < 1 {
		return usageErrorf("--workers %d: use 1 or more", workers)
	}
	if opts.FetchTimeout = c.Duration("op-timeout"); opts.FetchTimeout <= 0 {
		return usageErrorf("--op-timeout %v: use a positive duration such as 30s", opts.FetchTimeout)
	}
	ctx := c.Context
	rt, r, err := openRemote(c, c.Args().First())
	if err != nil {
		return err
	}
	log := rt.Logger()
	opts.Logger = log
	rep := newReporter(c, "warm", r)
	wopts := warmup.Options{Workers: workers, MaxBytes: opts.MaxBytes, Force: c.Bool("force"), DryRun: c.Bool("dry-run"), Progress: rep, Logger: log}

	ch, err := cache.Open(opts)
	if errors.Is(err, cache.ErrInUse) {
		return warmThroughDaemon(c, r, dir, err, rep, wopts)
	}
	if err != nil {
		return err
	}
	defer ch.Close()
	objs, err := warmup.List(ctx, r.bucket, r.prefix, r.path)
	if err != nil {
		return r.failListing(fmt.Sprintf("listing %q", r.spec), false, err)
	}
	if len(objs) == 0 {
		return cli.Exit(fmt.Sprintf("%s: no objects to warm (no such object or directory, or only empty objects)", r.spec), 1)
	}
	res, err := warmup.Run(ctx, ch, r.bucket, objs, wopts)
	return finishWarmup(c, r, rep, res, err)
}

// finishWarmup prints what a warmup did (or would do) and turns it into the exit code.
func finishWarmup(c *cli.Context, r *remote, rep *reporter, res warmup.Result, err error) error {
	var tooBig *warmup.TooBigError
	if errors.As(err, &tooBig) {
		return cli.Exit(fmt.Sprintf("plxfs: %s: %d objects, %s, take %s of the cache, more than its %s (--cache-size): give a bigger --cache-size or a narrower path, or --force to warm it anyway (the first objects warmed get evicted)",
			r.spec, res.Objects, humanBytes(res.Total), humanBytes(res.Footprint), humanBytes(res.MaxBytes)), 1)
	}
	if c.Bool("dry-run") && err == nil {
		fits := "fits"
		if !res.Fits() {
			fits = "does NOT fit (--force to warm it anyway)"
		}
		fmt.Fprintf(c.App.Writer, "%s: %d objects, %s: %d to fetch (%s), %d cached already; %s of the cache's %s: %s\n",
			r.spec, res.Objects, humanBytes(res.Total), res.Files, humanBytes(res.Bytes), res.Skipped,
			humanBytes(res.Footprint), humanBytes(res.MaxBytes), fits)
		return nil
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		err = r.fail(fmt.Sprintf("warming %q", r.spec), false, err)
	}
	return rep.finish(res.Summary, err)
}

// warmThroughDaemon asks the daemon that holds the cache directory dir (Open failed with
// locked) to warm r, and replays its progress on rep.
func warmThroughDaemon(c *cli.Context, r *remote, dir string, locked error, rep *reporter, wopts warmup.Options) error {
	sock, err := daemonOfCacheDir(c.Context, c.String("status-socket"), dir)
	if err != nil {
		return fmt.Errorf("%w; and %v", locked, err)
	}
	rt, _ := getRuntime(c)
	rt.Logger().Info("a daemon holds the cache dir: asking it to warm up", "socket", sock, "cache_dir", dir)
	req := control.WarmupRequest{Bucket: r.bucket.Name(), Prefix: r.prefix, Dir: r.path, Workers: wopts.Workers, DryRun: wopts.DryRun, Force: wopts.Force}
	if !c.IsSet("workers") {
		req.Workers = 0
	}
	var mu sync.Mutex // guards failures
	var failures []transfer.Failure
	wr, err := control.Warmup(c.Context, sock, req, func(ev control.WarmupEvent) {
		switch {
		case ev.Total != nil:
			rep.Total(ev.Total.Files, ev.Total.Bytes)
		case ev.Bytes > 0:
			rep.Bytes(ev.Bytes)
		case ev.Done != nil:
			tev := transfer.Event{Name: ev.Done.Name, Size: ev.Done.Size, Skipped: ev.Done.Skipped}
			if ev.Done.Err != "" {
				tev.Err = errors.New(ev.Done.Err)
				mu.Lock()
				failures = append(failures, transfer.Failure{Name: ev.Done.Name, Err: tev.Err})
				mu.Unlock()
			}
			rep.Done(tev)
		}
	})
	if err != nil {
		if c.Context.Err() != nil {
			return cli.Exit("interrupted", 1)
		}
		return err
	}
	res := warmup.Result{Objects: wr.Objects, Total: wr.Total, Footprint: wr.Footprint, MaxBytes: wr.MaxBytes}
	res.Files, res.Bytes, res.Skipped, res.Failed = wr.Files, wr.Bytes, wr.Skipped, wr.Failed
	res.Elapsed = time.Duration(wr.ElapsedMS) * time.Millisecond
	switch {
	case wr.TooBig:
		return finishWarmup(c, r, rep, res, &warmup.TooBigError{Result: res})
	case wr.Err != "":
		return fmt.Errorf("the daemon on %s: %s", sock, wr.Err)
	}
	mu.Lock()
	res.Failures = failures
	mu.Unlock()
	return finishWarmup(c, r, rep, res, nil)
}

// daemonOfCacheDir finds the status socket of the daemon whose cache directory is dir: the
// given socket, or the first of this user's daemons (control.Sockets) that reports dir.
func daemonOfCacheDir(ctx context.Context, given, dir string) (string, error) {
	socks := control.Sockets(control.ProcessEnv())
	if given != "" {
		socks = []string{given}
	}
	for _, s := range socks {
		gctx, cancel := context.WithTimeout(ctx, tellTimeout)
		st, err := control.Get(gctx, s)
		cancel()
		if err == nil && filepath.Clean(st.Cache.Dir) == dir {
			return s, nil
		}
	}
	if given != "" {
		return "", fmt.Errorf("the daemon on --status-socket %s does not answer or does not use that cache dir", given)
	}
	return "", errors.New("no daemon of this user answers on a status socket with that cache dir (mounted with --status-socket? give the same --status-socket here)")
}

// parseMountWarmup checks the mount's --warmup paths: CONNECTION or CONNECTION/DIR, relative
// to the mountpoint mnt, or absolute under it. It returns them relative and clean.
func parseMountWarmup(paths []string, mnt string) ([]string, error) {
	var out []string
	for _, p := range paths {
		rel := p
		if filepath.IsAbs(p) {
			r, err := filepath.Rel(mnt, filepath.Clean(p))
			if err != nil || r == "." || strings.HasPrefix(r, "..") {
				return nil, usageErrorf("--warmup %s is not under the mountpoint %s: give CONNECTION/DIR", p, mnt)
			}
			rel = r
		}
		rel = strings.Trim(filepath.ToSlash(filepath.Clean("/"+rel)), "/")
		if rel == "" {
			return nil, usageErrorf("--warmup %q names no connection: give CONNECTION or CONNECTION/DIR", p)
		}
		out = append(out, rel)
	}
	return out, nil
}

// mountWarmups runs the mount's --warmup paths one after another in the background, in fsys's
// connections through ch, logging what each did; ctx ends them.
func mountWarmups(ctx context.Context, paths []string, conns []fs.Connection, ch *cache.Cache, opts warmup.Options, log *slog.Logger) {
	for _, p := range paths {
		name, dir, _ := strings.Cut(p, "/")
		var conn *fs.Connection
		for i := range conns {
			if conns[i].Name == name {
				conn = &conns[i]
			}
		}
		if conn == nil {
			log.Error("--warmup: no such connection in the mount", "path", p, "connection", name)
			continue
		}
		log.Info("warmup: starting", "path", p)
		res, err := warmInConn(ctx, *conn, dir, ch, opts)
		attrs := []any{"path", p, "objects", res.Objects, "bytes", res.Total, "fetched", res.Files, "fetched_bytes", res.Bytes,
			"cached_already", res.Skipped, "failed", res.Failed, "elapsed", res.Elapsed.Round(time.Millisecond)}
		switch {
		case ctx.Err() != nil:
			log.Info("warmup: stopped", attrs...)
			return
		case err != nil:
			log.Error("warmup: failed", append(attrs, "err", err)...)
		case res.Failed > 0:
			log.Warn("warmup: done, some objects not cached", attrs...)
		default:
			log.Info("warmup: done", attrs...)
		}
	}
}

// warmInConn warms dir of conn through ch.
func warmInConn(ctx context.Context, conn fs.Connection, dir string, ch *cache.Cache, opts warmup.Options) (warmup.Result, error) {
	objs, err := warmup.List(ctx, conn.Bucket, conn.Prefix, dir)
	if err != nil {
		return warmup.Result{}, err
	}
	return warmup.Run(ctx, ch, conn.Bucket, objs, opts)
}

// serveWarmup answers a plxfs warmup that found the cache directory held by this daemon:
// the request's bucket must be one of the mount's connections'.
func serveWarmup(conns []fs.Connection, ch *cache.Cache, base warmup.Options, log *slog.Logger) func(context.Context, control.WarmupRequest, func(control.WarmupEvent)) {
	return func(ctx context.Context, req control.WarmupRequest, emit func(control.WarmupEvent)) {
		var conn *fs.Connection
		for i := range conns {
			if conns[i].Bucket.Name() == req.Bucket {
				conn = &conns[i]
				break
			}
		}
		if conn == nil {
			emit(control.WarmupEvent{Result: &control.WarmupResult{Err: fmt.Sprintf("this mount has no connection on bucket %q; warm it with a cache dir of its own", req.Bucket)}})
			return
		}
		opts := base
		if req.Workers > 0 {
			opts.Workers = req.Workers
		}
		opts.DryRun, opts.Force = req.DryRun, req.Force
		opts.Progress = &socketProgress{emit: emit}
		// The daemon's view of the bucket, with the request's connection prefix.
		c := fs.Connection{Name: conn.Name, Bucket: conn.Bucket, Prefix: req.Prefix}
		log.Info("warmup asked over the status socket", "bucket", req.Bucket, "prefix", req.Prefix, "dir", req.Dir, "dry_run", req.DryRun)
		res, err := warmInConn(ctx, c, req.Dir, ch, opts)
		out := &control.WarmupResult{Files: res.Files, Bytes: res.Bytes, Skipped: res.Skipped, Failed: res.Failed,
			Objects: res.Objects, Total: res.Total, Footprint: res.Footprint, MaxBytes: res.MaxBytes, ElapsedMS: res.Elapsed.Milliseconds()}
		var tooBig *warmup.TooBigError
		switch {
		case errors.As(err, &tooBig):
			out.TooBig = true
		case err != nil:
			out.Err = err.Error()
		}
		log.Info("warmup over the status socket: done", "bucket", req.Bucket, "prefix", req.Prefix, "dir", req.Dir,
			"objects", res.Objects, "fetched", res.Files, "fetched_bytes", res.Bytes, "cached_already", res.Skipped, "failed", res.Failed, "err", out.Err)
		emit(control.WarmupEvent{Result: out})
	}
}

// socketProgress sends a warmup's progress as status-socket events, bytes at most every
// 4 MiB.
type socketProgress struct {
	emit    func(control.WarmupEvent)
	pending atomic.Int64
}

func (p *socketProgress) Total(files, bytes int64) {
	p.emit(control.WarmupEvent{Total: &control.WarmupTotal{Files: files, Bytes: bytes}})
}

func (p *socketProgress) Bytes(n int64) {
	if v := p.pending.Add(n); v >= 4<<20 {
		if p.pending.CompareAndSwap(v, 0) {
			p.emit(control.WarmupEvent{Bytes: v})
		}
	}
}

// Composing is never reported: warmup only reads.
func (p *socketProgress) Composing(string, int) {}

func (p *socketProgress) Done(ev transfer.Event) {
	if v := p.pending.Swap(0); v > 0 {
		p.emit(control.WarmupEvent{Bytes: v})
	}
	d := &control.WarmupDone{Name: ev.Name, Size: ev.Size, Skipped: ev.Skipped}
	if ev.Err != nil {
		d.Err = ev.Err.Error()
	}
	p.emit(control.WarmupEvent{Done: d})
}

// connNames are the names of conns.
func connNames(conns []connspec.Connection) []string {
	names := make([]string, len(conns))
	for i, c := range conns {
		names[i] = c.Name
	}
	return names
}
