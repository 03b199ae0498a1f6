// Package kubetest decodes plxfs's Kubernetes manifests strictly into the k8s.io/api types and
// checks that a pod runs plxfs the way its connection specs say: every secret and configMap
// where its spec puts it, the mount shared with the right propagation, the sidecar's lifecycle.
// Tests of the example manifests (deploy/kubernetes) and of `plxfs kube sidecar` (cmd/plxfs)
// share it; CheckPod returns errors rather than failing a test, so tests can also check that a
// broken pod is caught.
package kubetest
