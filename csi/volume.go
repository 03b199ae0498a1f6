package csi

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	csipb "github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/plxfs/plxfs/connspec"
)

// Volume attributes (a pod's csi.volumeAttributes, a PersistentVolume's
// spec.csi.volumeAttributes). Every one is optional; see spec for how the volume is found.
const (
	AttrConnection = "connection" // a connection name from the driver's catalog
	AttrBucket     = "bucket"     // gs://BUCKET[/PREFIX], instead of a connection
	AttrPrefix     = "prefix"     // a prefix below the connection's or bucket's own
	AttrSecretPath = "secretPath" // with bucket: where the key is mounted in the driver (file or directory)
	AttrCacheSize  = "cacheSize"  // what the volume expects of the node's one cache (at most --cache-size)
	AttrTTL        = "ttl"        // metadata TTL, as plxfs mount --ttl
	AttrUID        = "uid"        // owner of every file
	AttrGID        = "gid"        // group of every file
	AttrFileMode   = "fileMode"   // octal permission bits of files
	AttrDirMode    = "dirMode"    // octal permission bits of directories
	AttrReadOnly   = "readOnly"   // "true": read-only, like the request's readonly flag
)

// knownAttrs lists the attributes above, for the error that names an unknown one.
var knownAttrs = []string{AttrConnection, AttrBucket, AttrPrefix, AttrSecretPath, AttrCacheSize,
	AttrTTL, AttrUID, AttrGID, AttrFileMode, AttrDirMode, AttrReadOnly}

// kubeAttrPrefix marks the attributes Kubernetes adds itself (pod name, namespace, ephemeral):
// they are accepted and ignored.
const kubeAttrPrefix = "csi.storage.k8s.io/"

// spec is one volume request, checked: the connection to mount and how.
type spec struct {
	VolumeID string
	// Conn is the connection to mount (from the catalog, or built from the bucket attribute or
	// the volume ID), Prefix included.
	Conn      connspec.Connection
	ReadOnly  bool
	CacheSize int64 // 0: not given
	TTL       time.Duration
	UID, GID  *uint32
	FileMode  uint32
	DirMode   uint32
}

// invalid returns the InvalidArgument error naming what is wrong.
func invalid(format string, args ...any) error {
	return status.Errorf(codes.InvalidArgument, format, args...)
}

// parseSpec builds a volume's spec from a publish request's ID, attributes and capability.
// Errors are gRPC statuses: InvalidArgument naming the attribute, NotFound for a volume ID
// that is neither a catalog connection nor a gs:// URL.
func parseSpec(volumeID string, attrs map[string]string, readonly bool, cat *connspec.Catalog, nodeCache int64) (spec, error) {
	s := spec{VolumeID: volumeID, ReadOnly: readonly}
	var unknown []string
	for k := range attrs {
		if !slices.Contains(knownAttrs, k) && !strings.HasPrefix(k, kubeAttrPrefix) {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return s, invalid("volume attribute %q: unknown (known: %s)", unknown[0], strings.Join(knownAttrs, ", "))
	}
	name, bucket := attrs[AttrConnection], attrs[AttrBucket]
	switch {
	case name != "" && bucket != "":
		return s, invalid("volume attributes %q and %q: give one, not both", AttrConnection, AttrBucket)
	case name != "":
		c, err := catalogConn(cat, name)
		if err != nil {
			return s, invalid("volume attribute %q: %v", AttrConnection, err)
		}
		s.Conn = c
	case bucket != "":
		c, err := bucketConn(volumeID, bucket)
		if err != nil {
			return s, invalid("volume attribute %q: %v", AttrBucket, err)
		}
		s.Conn = c
	case strings.HasPrefix(volumeID, "gs://") || strings.HasPrefix(volumeID, "gcs://"):
		c, err := bucketConn(volumeID, volumeID)
		if err != nil {
			return s, invalid("volume ID %q: %v", volumeID, err)
		}
		s.Conn = c
	default:
		c, err := catalogConn(cat, volumeID)
		if err != nil {
			return s, status.Errorf(codes.NotFound, "volume %q: not a connection of the driver's catalog and not a gs://BUCKET/PREFIX URL, and no %q or %q attribute says what to mount (%v)", volumeID, AttrConnection, AttrBucket, err)
		}
		s.Conn = c
	}
	if p := attrs[AttrSecretPath]; p != "" {
		if bucket == "" && !strings.HasPrefix(volumeID, "gs://") && !strings.HasPrefix(volumeID, "gcs://") {
			return s, invalid("volume attribute %q: only with %q or a gs:// volume ID (a connection names its own secret)", AttrSecretPath, AttrBucket)
		}
		if !path.IsAbs(p) {
			return s, invalid("volume attribute %q: %q is not an absolute path in the driver's container", AttrSecretPath, p)
		}
		s.Conn.Secret = &connspec.Ref{Name: AttrSecretPath + " attribute", MountPath: p}
	}
	if p := attrs[AttrPrefix]; p != "" {
		clean := strings.Trim(p, "/")
		for _, seg := range strings.Split(clean, "/") {
			if err := connspec.SegmentOK(seg); err != nil {
				return s, invalid("volume attribute %q: %q: %v", AttrPrefix, p, err)
			}
		}
		s.Conn.Prefix += clean + "/"
	}
	if v := attrs[AttrReadOnly]; v != "" {
		ro, err := strconv.ParseBool(v)
		if err != nil {
			return s, invalid("volume attribute %q: %q is not true or false", AttrReadOnly, v)
		}
		s.ReadOnly = s.ReadOnly || ro
	}
	if v := attrs[AttrCacheSize]; v != "" {
		n, err := parseSize(v)
		if err != nil {
			return s, invalid("volume attribute %q: %v", AttrCacheSize, err)
		}
		if n > nodeCache {
			return s, invalid("volume attribute %q: %s is more than this node's cache (%d bytes, the driver's --cache-size), which all volumes share", AttrCacheSize, v, nodeCache)
		}
		s.CacheSize = n
	}
	if v := attrs[AttrTTL]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return s, invalid("volume attribute %q: %q is not a duration such as 60s (0 disables metadata caching)", AttrTTL, v)
		}
		s.TTL = d
	}
	for _, id := range []struct {
		attr string
		dst  **uint32
	}{{AttrUID, &s.UID}, {AttrGID, &s.GID}} {
		if v := attrs[id.attr]; v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return s, invalid("volume attribute %q: %q is not a numeric id", id.attr, v)
			}
			u := uint32(n)
			*id.dst = &u
		}
	}
	for _, m := range []struct {
		attr string
		dst  *uint32
	}{{AttrFileMode, &s.FileMode}, {AttrDirMode, &s.DirMode}} {
		if v := attrs[m.attr]; v != "" {
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil || n == 0 || n > 0o777 {
				return s, invalid("volume attribute %q: %q is not octal permission bits such as 0644", m.attr, v)
			}
			*m.dst = uint32(n)
		}
	}
	return s, nil
}

// catalogConn finds a gcs connection by name.
func catalogConn(cat *connspec.Catalog, name string) (connspec.Connection, error) {
	if cat == nil {
		return connspec.Connection{}, fmt.Errorf("connection %q: the driver has no connections catalog (--config or $POLYAXON_CONNECTIONS_CATALOG)", name)
	}
	conns, err := cat.Select([]string{name})
	if err != nil {
		return connspec.Connection{}, err
	}
	return conns[0], nil
}

// bucketConn builds an inline connection from gs://BUCKET[/PREFIX] (or a bare bucket name).
func bucketConn(volumeID, url string) (connspec.Connection, error) {
	if !strings.Contains(url, "://") {
		url = "gs://" + url
	}
	b, p, err := connspec.ParseBucketURL(url)
	if err != nil {
		return connspec.Connection{}, err
	}
	return connspec.Connection{Name: volumeID, Kind: "gcs", Bucket: b, Prefix: p}, nil
}

// parseSize reads sizes such as 20GiB, 500MiB, 1G or 4096.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"Ti", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is not a size such as 20GiB or 500MiB", s)
	}
	return n * mult, nil
}

// volumeCapability checks that a capability is one plxfs serves: a mount (not a block device)
// of any access mode. It reports whether the mode is read-only.
func volumeCapability(vc *csipb.VolumeCapability) (readOnly bool, err error) {
	if vc == nil {
		return false, invalid("volume_capability: missing")
	}
	if vc.GetBlock() != nil {
		return false, invalid("volume_capability: block access is not supported (plxfs volumes are filesystems)")
	}
	if vc.GetMount() == nil {
		return false, invalid("volume_capability: access_type must be mount")
	}
	if fst := vc.GetMount().GetFsType(); fst != "" && fst != "fuse" && fst != "plxfs" {
		return false, invalid("volume_capability.mount.fs_type %q: plxfs volumes are FUSE filesystems (leave it empty)", fst)
	}
	switch vc.GetAccessMode().GetMode() {
	case csipb.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY, csipb.VolumeCapability_AccessMode_MULTI_NODE_READER_ONLY:
		return true, nil
	case csipb.VolumeCapability_AccessMode_UNKNOWN:
		return false, invalid("volume_capability.access_mode: missing")
	}
	return false, nil
}
