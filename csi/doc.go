// Package csi is plxfs's Kubernetes CSI node plugin (driver DriverName): the Identity and
// Node services of the CSI spec over gRPC on a unix socket, so that a pod mounts a Polyaxon
// connection as a volume, inline (ephemeral) or through a pre-provisioned PersistentVolume.
//
// # Structure
//
// One driver process per node serves every volume published on it. Each publication (one
// target path) is its own fs.FS with its own FUSE server, storage client, staging directory
// and metrics, built exactly as `plxfs mount` builds one (the storage client's bucket under the
// same bucketstack: hedging, --op-timeout, metrics and the breaker, with the same flags
// --hedge-floor and --op-timeout), and all of them read through one
// cache.Cache. That is the reason for one process rather than one daemon per volume: the
// cache directory is flock'ed by the process that owns it, and a shared cache is what makes
// ten pods reading one dataset fetch each chunk once (cache keys carry the object generation,
// so sharing is safe across volumes and buckets). The price is that a crash of the driver takes
// every volume of the node down at once; Recover brings them back (see Restarts).
//
// A volume's FUSE mount lives in the state dir (mnt/<id>, id a hash of the target path) and
// shows one directory, whose bind mount at the target path is what the pod sees: the
// connection's contents at the pod's mount path, not one level down. A read-only volume is a
// read-only filesystem (EROFS) and a read-only bind mount.
//
// # What a volume is
//
// Volume attributes (Attr*) say what to mount: connection (a name in the driver's catalog) or
// bucket (gs://BUCKET/PREFIX, with prefix and secretPath); without either the volume ID is
// taken as a connection name or a gs:// URL, which is what a PersistentVolume's volumeHandle
// holds. Unknown attributes are InvalidArgument naming the attribute (Kubernetes' own
// csi.storage.k8s.io/ attributes are ignored); so are bad values.
//
// # Credentials
//
// Resolved per volume with package creds, in plxfs's order, with one source ahead of it: the
// request's secrets (a PersistentVolume's nodePublishSecretRef), which appear to resolution
// as a secret mounted in memory (never written to disk, never logged). Then the connection's
// own mounted secret or configMap (mounted into the driver's pod by `plxfs kube csi`), the
// driver's environment, and Application Default Credentials (workload identity). The source
// chosen is logged and recorded, never the key.
//
// # Unpublish
//
// The volume takes no new changes (EROFS), its pending uploads finish within the grace period
// (Options.Grace), then the target and the FUSE mount are unmounted (detached if files are
// still open: the detached filesystem is served until they are closed), the target path and
// the record are removed. Unpublishing a target that is not published succeeds.
//
// # Restarts
//
// Each publication is recorded in the state dir (record: no secrets). At start Recover
// detaches the dead mounts a killed driver left and serves every recorded volume again at its
// target; a volume whose key came with the request cannot be, and waits for the kubelet to
// publish it again (the CSIDriver sets requiresRepublish). A pod sees a volume served again
// only if its volumeMount propagates host mounts (mountPropagation: HostToContainer); others
// see ENOTCONN until restarted, as with any FUSE-based CSI driver.
//
// # Locks
//
// Driver.mu guards the volume tables and the busy set; it is never held across a mount, an
// upload or a GCS call. An operation on a target marks it busy; a second one at the same
// time is Aborted, as the spec suggests.
package csi
