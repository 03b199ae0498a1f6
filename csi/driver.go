package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/creds"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/bucketstack"
	"github.com/plxfs/plxfs/store"
)

// DriverName is the CSI driver's name: the CSIDriver object's name and what pods write in
// volumes[].csi.driver.
const DriverName = "plxfs.polyaxon.io"

// OpenBucketFunc opens a bucket with a volume's credentials: the storage client's own bucket,
// which counts what it does (upload outcome checks) into counters, the volume's. The driver
// puts the bucket stack (package bucketstack) over it. The closer releases what was opened
// (the storage client) once the volume is gone.
type OpenBucketFunc func(ctx context.Context, bucket string, cr creds.Credentials, counters *store.Counters) (store.Bucket, io.Closer, error)

// Options configure a Driver. Zero values select the documented defaults.
type Options struct {
	// NodeID is this node's name, returned by NodeGetInfo. Required.
	NodeID string
	// Version is the plugin's vendor version (GetPluginInfo). Default "dev".
	Version string
	// Catalog holds the connections a volume may name (connection attribute, or a volume ID
	// that is a connection name). Nil: volumes must give a bucket.
	Catalog *connspec.Catalog
	// Env is where credentials are looked for besides a request's secrets (a connection's
	// mounted secret, the driver's variables, ADC). Zero: the real process (creds.OSEnv).
	Env creds.Env
	// Anonymous makes every volume use no credentials (public buckets).
	Anonymous bool
	// Emulator says the storage endpoint is an emulator: no credentials are sent, whatever a
	// volume's resolve to (they are still resolved, so that a bad key fails the publish as it
	// would against GCS), and the log says so.
	Emulator bool
	// OpenBucket opens a bucket with the credentials resolved for a volume. Required.
	OpenBucket OpenBucketFunc
	// Cache is the node's one read cache, shared by every volume. Required.
	Cache *cache.Cache
	// CacheSize is the Cache's bound (its Options.MaxBytes), which a volume's cacheSize
	// attribute may not exceed. Required.
	CacheSize int64
	// StateDir holds volume records, the FUSE mounts and staged writes (see state). Required;
	// it must survive a restart of the driver (a hostPath).
	StateDir string
	// FS is the template of every volume's filesystem options: TTL, uploads, modes, owner.
	// Connections, Cache, StagingDir, ReadOnly, Logger, Observer and Upload.Owner are set per
	// volume; a volume's attributes override TTL, UID, GID, FileMode and DirMode.
	FS fs.Options
	// Debug logs every FUSE request of every volume.
	Debug bool
	// Storage is the bucket stack of every volume (timeouts, hedging, breaker), the same as
	// plxfs mount's; its zero value is a mount's defaults. Metrics and Logger are set per
	// volume.
	Storage bucketstack.Options
	// Grace bounds how long an unpublish (or the driver's shutdown) waits for pending
	// uploads. Default 2m.
	Grace time.Duration
	// Logger receives the driver's log. Default slog.Default().
	Logger *slog.Logger
}

// Driver is plxfs's CSI node plugin: the Identity and Node services, serving every published
// volume from this process with one shared cache.
type Driver struct {
	csipb.UnimplementedIdentityServer
	csipb.UnimplementedNodeServer

	opts  Options
	log   *slog.Logger
	state state
	ready atomic.Bool

	// mu guards the fields below.
	mu      sync.Mutex
	vols    map[string]*volume // by target path
	pending map[string]record  // published before a restart, not served (by target path)
	busy    map[string]bool    // target paths with an operation in flight
}

// New checks opts and prepares the state dir; nothing is mounted until Recover and requests.
func New(opts Options) (*Driver, error) {
	switch {
	case opts.NodeID == "":
		return nil, errors.New("csi: a node ID is required (--node-id, usually the node's name)")
	case opts.OpenBucket == nil:
		return nil, errors.New("csi: Options.OpenBucket is required")
	case opts.Cache == nil || opts.CacheSize <= 0:
		return nil, errors.New("csi: Options.Cache and CacheSize are required")
	case opts.StateDir == "" || !filepath.IsAbs(opts.StateDir):
		return nil, fmt.Errorf("csi: the state dir %q must be an absolute path", opts.StateDir)
	}
	if opts.Version == "" {
		opts.Version = "dev"
	}
	if opts.Env.ReadFile == nil {
		opts.Env = creds.OSEnv()
	}
	if opts.Grace <= 0 {
		opts.Grace = 2 * time.Minute
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Driver{opts: opts, log: opts.Logger, state: state{dir: opts.StateDir},
		vols: map[string]*volume{}, pending: map[string]record{}, busy: map[string]bool{}}
	if err := d.state.ensure(); err != nil {
		return nil, err
	}
	return d, nil
}

// Recover finds the volumes a previous run of the driver published: it removes their dead
// mounts and serves them again, except volumes whose credentials came with the request, which
// wait (unmounted) for the kubelet to publish them again. Probe reports ready afterwards.
func (d *Driver) Recover(ctx context.Context) {
	defer d.ready.Store(true)
	recs, bad := d.state.load()
	for _, err := range bad {
		d.log.Warn("skipping a volume record", "err", err)
	}
	for _, r := range recs {
		id := publishID(r.TargetPath)
		log := d.log.With("volume_id", r.VolumeID, "target_path", r.TargetPath)
		for _, p := range []string{r.TargetPath, d.state.fuseDir(id)} {
			if err := unmountAll(p, 0); err != nil {
				log.Warn("could not remove a mount left by the previous run", "path", p, "err", err)
			}
		}
		if r.RequestSecrets {
			log.Warn("a volume published before the restart used the request's secrets, which are not kept; it is served again when the kubelet publishes it again")
			d.mu.Lock()
			d.pending[r.TargetPath] = r
			d.mu.Unlock()
			continue
		}
		sp, err := parseSpec(r.VolumeID, r.Attributes, r.Readonly, d.opts.Catalog, d.opts.CacheSize)
		var v *volume
		if err == nil {
			v, err = d.publish(ctx, sp, r, d.opts.Env)
		}
		d.mu.Lock()
		if err != nil {
			log.Error("could not serve a volume published before the restart again; it stays unmounted until unpublished or published again", "err", err)
			d.pending[r.TargetPath] = r
		} else {
			log.Info("serving a volume published before the restart again")
			d.vols[r.TargetPath] = v
		}
		d.mu.Unlock()
	}
}

// Serve answers CSI requests on endpoint (unix:///path/csi.sock, or a path) until ctx is
// done. A socket file left by a previous run is replaced.
func (d *Driver) Serve(ctx context.Context, endpoint string) error {
	p, err := socketPath(endpoint)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("csi endpoint %s: %w", endpoint, err)
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("csi endpoint %s: removing the old socket: %w", endpoint, err)
	}
	l, err := net.Listen("unix", p)
	if err != nil {
		return fmt.Errorf("csi endpoint %s: %w", endpoint, err)
	}
	srv := grpc.NewServer(grpc.UnaryInterceptor(d.logCall))
	csipb.RegisterIdentityServer(srv, d)
	csipb.RegisterNodeServer(srv, d)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	d.log.Info("serving CSI", "endpoint", endpoint, "driver", DriverName, "node_id", d.opts.NodeID)
	select {
	case <-ctx.Done():
		srv.GracefulStop()
		<-done
		return nil
	case err := <-done:
		return fmt.Errorf("csi endpoint %s: %w", endpoint, err)
	}
}

// socketPath turns unix:///path (or unix:path, or a bare path) into the path.
func socketPath(endpoint string) (string, error) {
	if !strings.Contains(endpoint, "://") && !strings.HasPrefix(endpoint, "unix:") {
		return filepath.Abs(endpoint)
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Scheme != "unix" {
		return "", fmt.Errorf("csi endpoint %q: use unix:///path/to/csi.sock", endpoint)
	}
	p := u.Path
	if p == "" {
		p = u.Opaque
	}
	if p == "" {
		return "", fmt.Errorf("csi endpoint %q: no socket path", endpoint)
	}
	return filepath.Abs(p)
}

// Shutdown stops every volume as an unpublish would (pending uploads, bounded by the grace
// period, then the unmounts) but keeps their records, so the next run serves them again.
func (d *Driver) Shutdown() error {
	d.mu.Lock()
	vols := d.vols
	d.vols = map[string]*volume{}
	d.mu.Unlock()
	var errs []error
	var wg sync.WaitGroup
	var emu sync.Mutex
	for _, v := range vols {
		wg.Go(func() {
			if err := d.stop(v, false); err != nil {
				emu.Lock()
				errs = append(errs, err)
				emu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// logCall logs one line per request: method, volume, target, outcome and duration. It never
// logs a request as a whole (NodePublishVolume carries secrets).
func (d *Driver) logCall(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := handler(ctx, req)
	method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
	attrs := []any{"method", method, "code", status.Code(err).String(), "duration", time.Since(start).Round(time.Microsecond)}
	if r, ok := req.(interface{ GetVolumeId() string }); ok && r.GetVolumeId() != "" {
		attrs = append(attrs, "volume_id", r.GetVolumeId())
	}
	if r, ok := req.(interface{ GetTargetPath() string }); ok && r.GetTargetPath() != "" {
		attrs = append(attrs, "target_path", r.GetTargetPath())
	}
	level := slog.LevelInfo
	switch method {
	case "Probe", "GetPluginInfo", "GetPluginCapabilities", "NodeGetCapabilities", "NodeGetInfo", "NodeGetVolumeStats":
		level = slog.LevelDebug
	}
	if err != nil {
		level = slog.LevelWarn
		attrs = append(attrs, "err", status.Convert(err).Message())
	}
	d.log.Log(ctx, level, "csi request", attrs...)
	return resp, err
}
