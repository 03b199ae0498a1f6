package csi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plxfs/plxfs/creds"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/bucketstack"
	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
)

// volumeDir is the name of the one directory of a volume's FUSE mount (fs shows one directory
// per connection); that directory is what is bind-mounted at the target path, so a pod sees
// the connection's contents at its mount path.
const volumeDir = "volume"

// volume is one published target: its filesystem, FUSE server, storage client and metrics.
type volume struct {
	rec     record
	id      string // publishID(rec.TargetPath)
	fsys    *fs.FS
	server  *fuse.Server
	served  chan struct{} // closed when the FUSE server has stopped
	closer  io.Closer
	metrics *metrics.Metrics
	log     *slog.Logger
}

// publish serves sp at rec.TargetPath: it resolves the credentials in env, checks that the
// bucket can be listed, mounts the filesystem in the state dir, bind-mounts its directory at
// the target and writes the record. On failure nothing is left mounted.
func (d *Driver) publish(ctx context.Context, sp spec, rec record, env creds.Env) (_ *volume, err error) {
	id := publishID(rec.TargetPath)
	log := d.log.With("volume_id", rec.VolumeID, "target_path", rec.TargetPath)
	fuseDir, stagingDir := d.state.fuseDir(id), d.state.stagingDir(id)
	if err := unmountAll(fuseDir, 0); err != nil {
		return nil, status.Errorf(codes.Internal, "%v", err)
	}
	for _, dir := range []string{fuseDir, stagingDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, status.Errorf(codes.Internal, "state dir: %v", err)
		}
	}
	cr, err := creds.Resolve(sp.Conn, env, creds.Options{Anonymous: d.opts.Anonymous})
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q: credentials: %v", rec.VolumeID, err)
	}
	rec.Credentials, rec.Bucket, rec.Prefix = cr.Source, sp.Conn.Bucket, sp.Conn.Prefix
	m := metrics.New()
	client, closer, err := d.opts.OpenBucket(ctx, sp.Conn.Bucket, cr, m.StorageCounters())
	if err != nil {
		return nil, status.Errorf(codes.FailedPrecondition, "volume %q: opening gs://%s: %v", rec.VolumeID, sp.Conn.Bucket, err)
	}
	defer func() {
		if err != nil {
			closer.Close()
		}
	}()
	// The same stack as plxfs mount's (bucketstack), counted in the volume's metrics.
	so := d.opts.Storage
	so.Metrics, so.Logger = m, log
	b := bucketstack.Wrap(client, so)
	lctx, cancel := context.WithTimeout(ctx, so.OpTimeoutOrDefault())
	_, err = b.List(lctx, store.ListOptions{Prefix: sp.Conn.Prefix, Delimiter: "/", PageSize: 1})
	cancel()
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "volume %q: cannot list gs://%s/%s with credentials from %s: %v", rec.VolumeID, sp.Conn.Bucket, sp.Conn.Prefix, cr.Source, err)
	}

	o := d.opts.FS
	o.Connections = []fs.Connection{{Name: volumeDir, Bucket: b, Prefix: sp.Conn.Prefix}}
	o.Cache = d.opts.Cache
	o.StagingDir = stagingDir
	o.ReadOnly = sp.ReadOnly
	if sp.TTL > 0 {
		o.TTL = sp.TTL
	} else if _, ok := rec.Attributes[AttrTTL]; ok {
		o.TTL = -1 // ttl: 0 disables metadata caching; fs.Options' 0 would mean the default
	}
	if sp.UID != nil {
		o.UID = *sp.UID
	}
	if sp.GID != nil {
		o.GID = *sp.GID
	}
	if sp.FileMode != 0 {
		o.FileMode = sp.FileMode
	}
	if sp.DirMode != 0 {
		o.DirMode = sp.DirMode
	}
	// Stable per node and target, so a restarted driver deletes what a killed one left.
	o.Upload.Owner = "plxfs-csi-" + d.opts.NodeID + "-" + id
	o.Logger = log
	o.Observer = m
	fsys, err := fs.New(o)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: %v", rec.VolumeID, err)
	}
	if n, err := fsys.CleanupTempParts(ctx); err != nil {
		log.Warn("could not remove temporary upload parts left by an earlier run", "err", err)
	} else if n > 0 {
		log.Info("removed temporary upload parts left by an earlier run", "objects", n)
	}
	// Pods run as any user: the mount must let other users in (root mounts directly, so no
	// fuse.conf is involved).
	fo := fsys.FuseOptions(fs.MountOptions{AllowOther: true, Debug: d.opts.Debug})
	fo.MountOptions.FsName = "plxfs:" + sp.Conn.Bucket
	raw := metrics.FUSE(fusefs.NewNodeFS(fsys.Root(), fo), m)
	server, err := fuse.NewServer(raw, fuseDir, &fo.MountOptions)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "volume %q: mount: %v", rec.VolumeID, err)
	}
	go server.Serve()
	v := &volume{rec: rec, id: id, fsys: fsys, server: server, served: make(chan struct{}), closer: closer, metrics: m, log: log}
	go func() {
		server.Wait()
		close(v.served)
	}()
	fail := func(err error) (*volume, error) {
		unmountAll(fuseDir, time.Second)
		return nil, err
	}
	if err := server.WaitMount(); err != nil {
		return fail(status.Errorf(codes.Internal, "volume %q: mount: %v", rec.VolumeID, err))
	}
	fsys.TuneMount(server, fuseDir)
	if err := os.MkdirAll(rec.TargetPath, 0o750); err != nil && !isStale(rec.TargetPath) {
		return fail(status.Errorf(codes.Internal, "target_path: %v", err))
	}
	if err := unmountAll(rec.TargetPath, 0); err != nil {
		return fail(status.Errorf(codes.Internal, "target_path: %v", err))
	}
	if err := bindMount(filepath.Join(fuseDir, volumeDir), rec.TargetPath, sp.ReadOnly); err != nil {
		return fail(status.Errorf(codes.Internal, "target_path: %v", err))
	}
	if err := d.state.save(rec); err != nil {
		unmountAll(rec.TargetPath, time.Second)
		return fail(status.Errorf(codes.Internal, "%v", err))
	}
	used := cr.Source
	if d.opts.Emulator {
		used = "none (emulator; against GCS: " + cr.Source + ")" // as plxfs mount says
	}
	log.Info("published", "bucket", sp.Conn.Bucket, "prefix", sp.Conn.Prefix, "read_only", sp.ReadOnly,
		"credentials", used, "credentials_type", cr.Type)
	return v, nil
}

// stop ends a volume: no new changes, pending uploads (within the grace period), unmount of the
// target and of the FUSE mount (detached if busy). With forget it also removes the target
// path and the volume's record and directories (unpublish); without, the record stays for the
// next run (shutdown). The error says which files could not be uploaded.
func (d *Driver) stop(v *volume, forget bool) error {
	v.fsys.StopWrites()
	pending := v.fsys.Pending()
	v.log.Info("unpublishing: uploading pending files, then unmounting", "pending", pending, "grace_period", d.opts.Grace)
	syncErr := d.syncWithin(v)
	var errs []error
	if syncErr != nil {
		v.log.Error("changes not uploaded: they are lost", "err", syncErr)
		errs = append(errs, syncErr)
	}
	if err := unmountAll(v.rec.TargetPath, 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	fuseDir := d.state.fuseDir(v.id)
	// Not server.Unmount: it waits for the server to stop, which it does only when the kernel
	// lets go of the filesystem, i.e. after the last file open through the (detached) target
	// is closed.
	if err := unmountAll(fuseDir, 2*time.Second); err != nil {
		errs = append(errs, err)
	}
	// A detached mount lives on while files are open in it; the FUSE server then serves them
	// until the last one is closed, and the storage client must stay open until then.
	finish := func() {
		v.closer.Close()
		if forget {
			os.RemoveAll(d.state.stagingDir(v.id))
			os.Remove(fuseDir)
		}
	}
	select {
	case <-v.served:
		finish()
	case <-time.After(5 * time.Second):
		v.log.Warn("files are still open in the detached mount; it is served until they are closed")
		go func() {
			<-v.served
			finish()
		}()
	}
	if forget {
		if err := removeTarget(v.rec.TargetPath); err != nil {
			errs = append(errs, err)
		}
		if err := d.state.remove(v.id); err != nil {
			errs = append(errs, err)
		}
		v.log.Info("unpublished")
	}
	return errors.Join(errs...)
}

// syncWithin uploads v's pending files, giving up after the grace period.
func (d *Driver) syncWithin(v *volume) error {
	done := make(chan error, 1)
	go func() { done <- v.fsys.SyncAll(context.Background()) }()
	select {
	case err := <-done:
		return err
	case <-time.After(d.opts.Grace):
		if n := v.fsys.Pending(); n > 0 {
			return fmt.Errorf("%d files not uploaded within the grace period %v", n, d.opts.Grace)
		}
		return nil
	}
}

// cleanupTarget unpublishes a target the driver does not serve: a mount left behind is
// removed, and so are the target path, the FUSE mount of the state dir and the record.
func (d *Driver) cleanupTarget(target string) error {
	id := publishID(target)
	var errs []error
	for _, p := range []string{target, d.state.fuseDir(id)} {
		if err := unmountAll(p, 2*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	os.Remove(d.state.fuseDir(id))
	os.RemoveAll(d.state.stagingDir(id))
	if err := removeTarget(target); err != nil {
		errs = append(errs, err)
	}
	if err := d.state.remove(id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeTarget removes the target directory (the CSI spec has the plugin delete what it
// created); a missing one is fine.
func removeTarget(target string) error {
	if err := os.Remove(target); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing target_path %s: %w", target, err)
	}
	return nil
}
