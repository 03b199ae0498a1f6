package main

// Observability of a running mount: Prometheus metrics (--metrics-addr), pprof (--pprof-addr),
// the status socket that 'plxfs status' reads (--status-socket), FUSE tracing (--debug-fuse),
// and the ring of recent warnings and errors behind the status. The mount command calls the
// functions here; packages metrics and internal/control do the work.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"sync"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/metrics"
)

// recentErrors is how many warnings and errors plxfs status shows.
const recentErrors = 20

// observeFlags are the mount command's observability flags.
func observeFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "metrics-addr", EnvVars: []string{"PLXFS_METRICS_ADDR"}, Usage: "serve Prometheus metrics at http://`ADDR`/metrics (such as :9464, or 127.0.0.1:9464 to keep them local)"},
		&cli.StringFlag{Name: "pprof-addr", EnvVars: []string{"PLXFS_PPROF_ADDR"}, Usage: "serve Go profiles at http://`ADDR`/debug/pprof/ (use a localhost address such as 127.0.0.1:6060)"},
		&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request and reply to stderr (very verbose)"},
		&cli.StringFlag{Name: "status-socket", EnvVars: []string{"PLXFS_STATUS_SOCKET"}, Usage: "unix socket `PATH` that 'plxfs status' reads (default: derived from the mountpoint; see plxfs status --help)"},
	}
}

// observeOptions say what startObservability serves.
type observeOptions struct {
	MetricsAddr  string // "": no metrics endpoint
	PprofAddr    string // "": no pprof endpoint
	StatusSocket string // "": the default socket for Mountpoint (see control.SocketDirs)
	Mountpoint   string // absolute
	Metrics      *metrics.Metrics
	Status       func() control.Status
	Changed      func([]control.Change)                                                  // nil: the socket refuses to be told of changes
	Warmup       func(context.Context, control.WarmupRequest, func(control.WarmupEvent)) // nil: the socket refuses warmups
}

// observeOptionsFrom reads the observability flags of the mount command.
func observeOptionsFrom(c *cli.Context, mountpoint string, m *metrics.Metrics, status func() control.Status) observeOptions {
	return observeOptions{
		MetricsAddr:  c.String("metrics-addr"),
		PprofAddr:    c.String("pprof-addr"),
		StatusSocket: c.String("status-socket"),
		Mountpoint:   mountpoint,
		Metrics:      m,
		Status:       status,
	}
}

// startObservability starts the metrics and pprof HTTP servers and the status socket. An
// address that cannot be listened on, or an explicit --status-socket that cannot be created,
// is an error (and nothing is left running); when the default status socket cannot be created
// the mount goes on without it, with a warning. stop shuts everything down; it may be called
// more than once. Keep the servers running until the daemon exits, so that uploads during
// shutdown can still be watched.
func startObservability(ctx context.Context, rt *runtime, opts observeOptions) (stop func(), err error) {
	log := rt.Logger()
	var closers []func()
	var once sync.Once
	stopOnce := func() {
		once.Do(func() {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		})
	}
	defer func() {
		if err != nil {
			stopOnce()
		}
	}()

	if opts.MetricsAddr != "" {
		if opts.Metrics == nil {
			return nil, errors.New("--metrics-addr: no metrics collected (internal error)")
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", opts.Metrics.Handler())
		mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "plxfs: metrics are at /metrics")
		})
		addr, closeFn, err := serveHTTP(ctx, "--metrics-addr", opts.MetricsAddr, mux)
		if err != nil {
			return nil, err
		}
		closers = append(closers, closeFn)
		log.Info("serving metrics", "url", "http://"+addr+"/metrics")
	}
	if opts.PprofAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		addr, closeFn, err := serveHTTP(ctx, "--pprof-addr", opts.PprofAddr, mux)
		if err != nil {
			return nil, err
		}
		closers = append(closers, closeFn)
		log.Info("serving pprof", "url", "http://"+addr+"/debug/pprof/")
	}
	if opts.Status != nil {
		path := opts.StatusSocket
		if path == "" {
			path, err = control.DefaultSocket(control.ProcessEnv(), opts.Mountpoint)
		}
		var ln net.Listener
		if err == nil {
			ln, err = control.Listen(path)
		}
		switch {
		case err != nil && opts.StatusSocket != "":
			return nil, fmt.Errorf("--status-socket %s: %w", opts.StatusSocket, err)
		case err != nil:
			log.Warn("no status socket: plxfs status will not find this daemon (give --status-socket PATH)", "err", err)
			err = nil
		default:
			srv := control.ServeHandlers(ln, control.Handlers{Status: opts.Status, Changed: opts.Changed, Warmup: opts.Warmup})
			closers = append(closers, func() { srv.Close() })
			log.Info("serving status", "socket", path)
		}
	}
	return stopOnce, nil
}

// serveHTTP listens on addr and serves h in the background; it returns the address actually
// listened on (":0" picks a port) and a function that shuts the server down.
func serveHTTP(ctx context.Context, flag, addr string, h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("%s %s: %w (is another process using the port?)", flag, addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	return ln.Addr().String(), func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
		<-done
	}, nil
}

// captureErrors makes rt's logger keep its warnings and errors in a ring for plxfs status.
// Call it before anything takes rt.Logger(), so every component logs through the ring.
func captureErrors(rt *runtime) *control.ErrorRing {
	ring := control.NewErrorRing(recentErrors)
	rt.log = slog.New(ring.Handler(rt.log.Handler()))
	return ring
}

// mountObserved is fs.FS.Mount with every FUSE request counted and timed in m (see
// metrics.FUSE). mo.Debug is --debug-fuse (or the older hidden --fuse-debug).
func mountObserved(fsys *fs.FS, mountpoint string, mo fs.MountOptions, m *metrics.Metrics) (*fuse.Server, error) {
	opts := fsys.FuseOptions(mo)
	raw := metrics.FUSE(fusefs.NewNodeFS(fsys.Root(), opts), m)
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		return nil, fmt.Errorf("mount %s: %w", mountpoint, err)
	}
	return server, nil
}

// statusSource assembles the daemon's status from its parts.
type statusSource struct {
	Mountpoint  string
	ReadOnly    bool
	Started     time.Time
	Connections []control.Connection
	CacheDir    string
	CacheMax    int64
	CacheStats  func() cache.Stats
	Metrics     *metrics.Metrics
	Errors      *control.ErrorRing
	Pending     func() int // files with changes not uploaded yet; nil: unknown (0)
}

// statusConnections describes the mounted connections; credentials by their source only.
func statusConnections(rt *runtime, conns []connspec.Connection) []control.Connection {
	out := make([]control.Connection, len(conns))
	for i, c := range conns {
		src := "unknown"
		if cr, err := rt.Credentials(c); err == nil {
			src = cr.Source
		}
		out[i] = control.Connection{Name: c.Name, Bucket: c.Bucket, Prefix: c.Prefix, Credentials: src}
	}
	return out
}

// Status is the daemon's status now.
func (s *statusSource) Status() control.Status {
	st := control.Status{
		Version:     version,
		PID:         os.Getpid(),
		Mountpoint:  s.Mountpoint,
		Started:     s.Started,
		ReadOnly:    s.ReadOnly,
		Connections: s.Connections,
	}
	st.Cache.Dir, st.Cache.MaxBytes = s.CacheDir, s.CacheMax
	if s.CacheStats != nil {
		cs := s.CacheStats()
		st.Cache.Bytes, st.Cache.Chunks = cs.Bytes, cs.Chunks
		st.Cache.Hits, st.Cache.Misses, st.Cache.Evictions = cs.Hits, cs.Misses, cs.Evictions
		st.Cache.HitRatio = control.HitRatio(cs.Hits, cs.Misses)
	}
	if s.Metrics != nil {
		ms := s.Metrics.Snapshot()
		st.Cache.GCSReadBytes, st.Cache.ServedBytes = ms.GCSReadBytes, ms.CacheServed
		st.Uploads = control.Uploads{InFlight: ms.UploadsInFlight, Done: ms.Uploads, Bytes: ms.UploadBytes, Failures: ms.UploadFailures}
		st.OpenHandles = ms.OpenHandles
		st.Integrity = control.Integrity{
			ChecksumMismatches:    ms.ChecksumMismatches,
			UploadOutcomesChecked: ms.Storage.OutcomeChecked(),
			UploadOutcomesLanded:  ms.Storage.OutcomeLanded,
			HedgedRequests:        ms.Storage.Hedged,
			StalledCalls:          ms.Storage.HedgeGaveUp,
			CircuitsOpen:          ms.Storage.CircuitsOpen,
			CircuitOpenings:       ms.Storage.CircuitOpenings,
			FailedFast:            ms.Storage.FailedFast,
			StaleServed:           ms.StaleServed,
		}
	}
	if s.Pending != nil {
		st.Uploads.Pending = s.Pending()
	}
	if s.Errors != nil {
		st.RecentErrors = s.Errors.Records()
		st.ErrorsLogged = s.Errors.Total()
	}
	return st
}
