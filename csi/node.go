package csi

import (
	"context"
	"errors"
	"maps"
	"path/filepath"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// NodeGetCapabilities: volume stats. No staging (a volume is a mount per
// target, nothing is shared per node but the cache) and no expansion (buckets have no size).
func (d *Driver) NodeGetCapabilities(context.Context, *csipb.NodeGetCapabilitiesRequest) (*csipb.NodeGetCapabilitiesResponse, error) {
	rpc := func(t csipb.NodeServiceCapability_RPC_Type) *csipb.NodeServiceCapability {
		return &csipb.NodeServiceCapability{Type: &csipb.NodeServiceCapability_Rpc{Rpc: &csipb.NodeServiceCapability_RPC{Type: t}}}
	}
	return &csipb.NodeGetCapabilitiesResponse{Capabilities: []*csipb.NodeServiceCapability{
		rpc(csipb.NodeServiceCapability_RPC_GET_VOLUME_STATS),
	}}, nil
}

// NodeGetInfo returns the node ID; there is no per-node volume limit and no topology.
func (d *Driver) NodeGetInfo(context.Context, *csipb.NodeGetInfoRequest) (*csipb.NodeGetInfoResponse, error) {
	return &csipb.NodeGetInfoResponse{NodeId: d.opts.NodeID}, nil
}

// NodePublishVolume mounts the volume at the target path. Publishing the same volume with the
// same attributes to the same target again succeeds without doing anything; another volume, or
// other attributes, at a target in use is AlreadyExists. A target whose mount died (the driver
// restarted) is mounted again.
func (d *Driver) NodePublishVolume(ctx context.Context, req *csipb.NodePublishVolumeRequest) (*csipb.NodePublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, invalid("volume_id: missing")
	case req.GetTargetPath() == "":
		return nil, invalid("target_path: missing")
	case !filepath.IsAbs(req.GetTargetPath()):
		return nil, invalid("target_path %q: not an absolute path", req.GetTargetPath())
	}
	roMode, err := volumeCapability(req.GetVolumeCapability())
	if err != nil {
		return nil, err
	}
	target := filepath.Clean(req.GetTargetPath())
	sp, err := parseSpec(req.GetVolumeId(), req.GetVolumeContext(), req.GetReadonly() || roMode, d.opts.Catalog, d.opts.CacheSize)
	if err != nil {
		return nil, err
	}
	env := d.opts.Env
	conn := sp.Conn
	if len(req.GetSecrets()) > 0 {
		if conn, env, err = withRequestSecrets(conn, env, req.GetSecrets()); err != nil {
			return nil, err
		}
		sp.Conn = conn
	}
	if err := d.lock(target); err != nil {
		return nil, err
	}
	defer d.unlock(target)

	d.mu.Lock()
	v := d.vols[target]
	d.mu.Unlock()
	if v != nil {
		same := v.rec.VolumeID == sp.VolumeID && maps.Equal(v.rec.Attributes, req.GetVolumeContext()) && v.rec.Readonly == sp.ReadOnly
		if !same {
			return nil, status.Errorf(codes.AlreadyExists, "target_path %s: volume %q is published there (with other attributes, or read-only where this one is not)", target, v.rec.VolumeID)
		}
		if !isStale(target) {
			return &csipb.NodePublishVolumeResponse{}, nil
		}
		d.log.Warn("the volume's mount is gone; mounting it again", "volume_id", sp.VolumeID, "target_path", target)
		d.stop(v, true)
		d.mu.Lock()
		delete(d.vols, target)
		d.mu.Unlock()
	}
	rec := record{VolumeID: sp.VolumeID, TargetPath: target, Attributes: maps.Clone(req.GetVolumeContext()),
		Readonly: sp.ReadOnly, RequestSecrets: len(req.GetSecrets()) > 0, Published: time.Now().UTC()}
	v, err = d.publish(ctx, sp, rec, env)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.vols[target] = v
	delete(d.pending, target)
	d.mu.Unlock()
	return &csipb.NodePublishVolumeResponse{}, nil
}

// NodeUnpublishVolume uploads the volume's pending files (bounded by the grace period),
// unmounts it and removes the target path. A target that is not published succeeds: the
// request is idempotent, and a mount left behind is removed all the same.
func (d *Driver) NodeUnpublishVolume(ctx context.Context, req *csipb.NodeUnpublishVolumeRequest) (*csipb.NodeUnpublishVolumeResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, invalid("volume_id: missing")
	case req.GetTargetPath() == "":
		return nil, invalid("target_path: missing")
	}
	target := filepath.Clean(req.GetTargetPath())
	if err := d.lock(target); err != nil {
		return nil, err
	}
	defer d.unlock(target)
	d.mu.Lock()
	v := d.vols[target]
	_, wasPending := d.pending[target]
	d.mu.Unlock()
	if v != nil && v.rec.VolumeID != req.GetVolumeId() {
		return nil, status.Errorf(codes.NotFound, "target_path %s holds volume %q, not %q", target, v.rec.VolumeID, req.GetVolumeId())
	}
	var err error
	if v != nil {
		err = d.stop(v, true)
		d.mu.Lock()
		delete(d.vols, target)
		d.mu.Unlock()
	} else {
		err = d.cleanupTarget(target)
		if wasPending {
			d.mu.Lock()
			delete(d.pending, target)
			d.mu.Unlock()
		}
	}
	if err != nil {
		return nil, status.Errorf(codes.Internal, "unpublish %s: %v", target, err)
	}
	return &csipb.NodeUnpublishVolumeResponse{}, nil
}

// NodeGetVolumeStats reports what the volume's filesystem reports (statfs: plxfs shows a large
// fixed capacity, buckets have none); a mount whose daemon side is gone is Unavailable.
func (d *Driver) NodeGetVolumeStats(ctx context.Context, req *csipb.NodeGetVolumeStatsRequest) (*csipb.NodeGetVolumeStatsResponse, error) {
	switch {
	case req.GetVolumeId() == "":
		return nil, invalid("volume_id: missing")
	case req.GetVolumePath() == "":
		return nil, invalid("volume_path: missing")
	}
	target := filepath.Clean(req.GetVolumePath())
	d.mu.Lock()
	v := d.vols[target]
	var known bool
	for _, w := range d.vols {
		known = known || w.rec.VolumeID == req.GetVolumeId()
	}
	for _, r := range d.pending {
		known = known || r.VolumeID == req.GetVolumeId()
	}
	d.mu.Unlock()
	if !known {
		return nil, status.Errorf(codes.NotFound, "volume %q: not published on this node", req.GetVolumeId())
	}
	if v == nil || v.rec.VolumeID != req.GetVolumeId() {
		return nil, status.Errorf(codes.NotFound, "volume %q: not published at %s", req.GetVolumeId(), target)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		msg := "statfs: " + err.Error()
		if errors.Is(err, unix.ENOTCONN) {
			msg = "the volume's FUSE daemon is gone (transport endpoint is not connected); the pod must be restarted, or the kubelet publish it again"
		}
		return nil, status.Errorf(codes.Unavailable, "volume %q at %s: %s", req.GetVolumeId(), target, msg)
	}
	bs := int64(st.Bsize)
	return &csipb.NodeGetVolumeStatsResponse{
		Usage: []*csipb.VolumeUsage{
			{Unit: csipb.VolumeUsage_BYTES, Total: int64(st.Blocks) * bs, Available: int64(st.Bavail) * bs, Used: int64(st.Blocks-st.Bfree) * bs},
			{Unit: csipb.VolumeUsage_INODES, Total: int64(st.Files), Available: int64(st.Ffree), Used: int64(st.Files - st.Ffree)},
		},
	}, nil
}

// lock marks target as having an operation in flight; a second one at the same time is
// Aborted, as the CSI spec asks ("operation pending for volume").
func (d *Driver) lock(target string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.busy[target] {
		return status.Errorf(codes.Aborted, "target_path %s: another operation is in progress there", target)
	}
	d.busy[target] = true
	return nil
}

func (d *Driver) unlock(target string) {
	d.mu.Lock()
	delete(d.busy, target)
	d.mu.Unlock()
}
