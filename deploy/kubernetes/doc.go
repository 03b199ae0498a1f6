// Package kubernetes builds the Kubernetes objects that run plxfs beside a job, from the
// connection specs themselves, so that the secrets, configMaps and mount paths a pod gets cannot
// drift from the connections plxfs reads. `plxfs kube sidecar` prints what Build returns; the
// hand-written examples in this directory (see README.md) follow the same layout, and the
// package's tests decode both strictly into the k8s.io/api types.
//
// # Layout
//
// Build returns a ConfigMap holding the connections file (mounted at ConfigDir) and a PodSpec
// fragment to merge into a Job's spec.template.spec:
//
//   - mount mode (default): a container "plxfs" running `plxfs mount` on an emptyDir at the
//     mount path with Bidirectional propagation (which Kubernetes allows only in privileged
//     containers, so the sidecar is privileged; that also gives it /dev/fuse). With Native it is
//     an init container with restartPolicy Always (Kubernetes native sidecar: the main container
//     starts once its startup probe, `plxfs wait`, passes, and it gets SIGTERM when the job's
//     containers finish). Without Native it is a regular container that exits when the main
//     container writes DoneFile (`plxfs mount --exit-on-file`). The main container ("main")
//     mounts the same emptyDir with HostToContainer propagation.
//   - init mode: one unprivileged init container per connection running `plxfs init`, copying
//     the whole connection into <mount path>/<connection> on an emptyDir the main container mounts.
//
// Credentials are placed as Polyaxon places them: a secret or configMap with a mountPath becomes
// a volume mounted read-only at exactly that path (a directory, as Kubernetes mounts volumes; one
// volume per distinct name, items honoured); without a mountPath, every key comes in through
// envFrom (so a configMap's GC_KEY_PATH reaches plxfs), or, with items, each listed key becomes
// an environment variable. Only the plxfs containers get credentials; the main container gets
// the mount.
//
// # Decisions
//
//   - The ready file and the exit sentinel live in their own emptyDir (RunDir), never inside the
//     FUSE mountpoint, whose root is the connections' parent directory.
//   - The connections file written to the ConfigMap carries name, kind, description, tags,
//     schema.bucket, secret and configMap. Other schema keys and env entries may hold key
//     material, which does not belong in a ConfigMap: Build leaves them out and says so in
//     Pod.Warnings.
//   - The memory request and limit (DefaultMemory) are one figure, set from plxfs's measured RSS;
//     the example manifests repeat it and a test keeps them equal.
package kubernetes
