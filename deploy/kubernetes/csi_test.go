package kubernetes_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"sigs.k8s.io/yaml"

	"github.com/plxfs/plxfs/csi"
	"github.com/plxfs/plxfs/deploy/kubernetes"
)

// csiDocs is `plxfs kube csi`'s output, strictly decoded by kind.
type csiDocs struct {
	drivers    []storagev1.CSIDriver
	accounts   []corev1.ServiceAccount
	roles      []rbacv1.ClusterRole
	bindings   []rbacv1.ClusterRoleBinding
	configMaps []corev1.ConfigMap
	daemonSets []appsv1.DaemonSet
	pods       []corev1.Pod
}

func decodeCSI(t *testing.T, data []byte) csiDocs {
	t.Helper()
	var out csiDocs
	for i, doc := range strings.Split(string(data), "\n---\n") {
		var head struct{ Kind string }
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		var err error
		switch head.Kind {
		case "CSIDriver":
			err = decodeAppend(doc, &out.drivers)
		case "ServiceAccount":
			err = decodeAppend(doc, &out.accounts)
		case "ClusterRole":
			err = decodeAppend(doc, &out.roles)
		case "ClusterRoleBinding":
			err = decodeAppend(doc, &out.bindings)
		case "ConfigMap":
			err = decodeAppend(doc, &out.configMaps)
		case "DaemonSet":
			err = decodeAppend(doc, &out.daemonSets)
		case "Pod":
			err = decodeAppend(doc, &out.pods)
		default:
			t.Fatalf("document %d: unexpected kind %q", i, head.Kind)
		}
		if err != nil {
			t.Fatalf("document %d (%s): %v", i, head.Kind, err)
		}
	}
	return out
}

func decodeAppend[T any](doc string, list *[]T) error {
	var v T
	if err := yaml.UnmarshalStrict([]byte(doc), &v); err != nil {
		return err
	}
	*list = append(*list, v)
	return nil
}

// TestBuildCSI decodes the CSI manifests strictly and checks what the driver needs: the
// driver name everywhere, a privileged node plugin with /dev/fuse, Bidirectional propagation
// of the kubelet's pods directory, the registrar on the same socket, the connections and their
// secrets in the driver, and an example pod whose volume names a connection of the ConfigMap.
func TestBuildCSI(t *testing.T) {
	conns := testConnections()
	out, err := kubernetes.BuildCSI(conns, kubernetes.CSIOptions{Image: "plxfs:test", CacheSize: "20GiB"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := out.WriteYAML(&buf, "test"); err != nil {
		t.Fatal(err)
	}
	docs := decodeCSI(t, buf.Bytes())
	if len(docs.drivers) != 1 || len(docs.accounts) != 1 || len(docs.roles) != 1 || len(docs.bindings) != 1 ||
		len(docs.configMaps) != 1 || len(docs.daemonSets) != 1 || len(docs.pods) != 1 {
		t.Fatalf("want one object of each kind, got %+v", docs)
	}
	if kubernetes.CSIDriverName != csi.DriverName {
		t.Fatalf("kubernetes.CSIDriverName %q != csi.DriverName %q", kubernetes.CSIDriverName, csi.DriverName)
	}
	drv := docs.drivers[0]
	if drv.Name != csi.DriverName || drv.Spec.AttachRequired == nil || *drv.Spec.AttachRequired ||
		!slices.Contains(drv.Spec.VolumeLifecycleModes, storagev1.VolumeLifecycleEphemeral) ||
		!slices.Contains(drv.Spec.VolumeLifecycleModes, storagev1.VolumeLifecyclePersistent) ||
		drv.Spec.RequiresRepublish == nil || !*drv.Spec.RequiresRepublish {
		t.Errorf("CSIDriver: %+v", drv)
	}
	ds := docs.daemonSets[0]
	spec := ds.Spec.Template.Spec
	if spec.ServiceAccountName != docs.accounts[0].Name || docs.bindings[0].Subjects[0].Name != docs.accounts[0].Name ||
		docs.bindings[0].RoleRef.Name != docs.roles[0].Name {
		t.Errorf("RBAC does not bind the DaemonSet's service account")
	}
	var plx, reg *corev1.Container
	for i := range spec.Containers {
		switch spec.Containers[i].Name {
		case kubernetes.CSIContainerName:
			plx = &spec.Containers[i]
		case "node-driver-registrar":
			reg = &spec.Containers[i]
		}
	}
	if plx == nil || reg == nil {
		t.Fatalf("containers: want plxfs and node-driver-registrar, got %v", spec.Containers)
	}
	if plx.SecurityContext == nil || plx.SecurityContext.Privileged == nil || !*plx.SecurityContext.Privileged {
		t.Error("the plxfs container is not privileged")
	}
	if len(plx.Args) == 0 || plx.Args[0] != "csi" || flagOf(plx.Args, "--cache-size") != "20GiB" || flagOf(plx.Args, "--node-id") != "$(NODE_ID)" {
		t.Errorf("plxfs args: %v", plx.Args)
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	mountOf := func(c *corev1.Container, path string) (corev1.VolumeMount, corev1.Volume, bool) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == path {
				return m, vols[m.Name], true
			}
		}
		return corev1.VolumeMount{}, corev1.Volume{}, false
	}
	if _, v, ok := mountOf(plx, "/dev/fuse"); !ok || v.HostPath == nil || v.HostPath.Path != "/dev/fuse" {
		t.Error("plxfs has no /dev/fuse from the host")
	}
	if m, v, ok := mountOf(plx, kubernetes.KubeletPodsDir); !ok || v.HostPath == nil || v.HostPath.Path != kubernetes.KubeletPodsDir ||
		m.MountPropagation == nil || *m.MountPropagation != corev1.MountPropagationBidirectional {
		t.Errorf("the kubelet's pods dir is not mounted with Bidirectional propagation: %+v", m)
	}
	sock, sv, ok := mountOf(plx, "/csi")
	if rm, rv, rok := mountOf(reg, "/csi"); !ok || !rok || sock.Name != rm.Name || sv.HostPath.Path != kubernetes.CSIPluginDir || rv.HostPath.Path != kubernetes.CSIPluginDir {
		t.Error("plxfs and the registrar do not share the plugin socket dir")
	}
	if flagOf(reg.Args, "--kubelet-registration-path") != kubernetes.CSIPluginDir+"/csi.sock" {
		t.Errorf("registrar args: %v", reg.Args)
	}
	if _, v, ok := mountOf(reg, "/registration"); !ok || v.HostPath.Path != kubernetes.KubeletRegistry {
		t.Error("the registrar does not see the kubelet's plugin registry")
	}
	// Every mounted secret of the connections is in the driver at its mountPath.
	for _, c := range conns {
		if c.Secret == nil || c.Secret.MountPath == "" {
			continue
		}
		if _, v, ok := mountOf(plx, c.Secret.MountPath); !ok || v.Secret == nil || v.Secret.SecretName != c.Secret.Name {
			t.Errorf("connection %q: secret %s not mounted at %s in the driver", c.Name, c.Secret.Name, c.Secret.MountPath)
		}
	}
	pod := docs.pods[0]
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].CSI == nil || pod.Spec.Volumes[0].CSI.Driver != csi.DriverName {
		t.Fatalf("example pod volumes: %+v", pod.Spec.Volumes)
	}
	name := pod.Spec.Volumes[0].CSI.VolumeAttributes["connection"]
	if !strings.Contains(docs.configMaps[0].Data[kubernetes.ConfigKey], "name: "+name+"\n") {
		t.Errorf("example pod names connection %q, which the ConfigMap does not hold", name)
	}
	if m := pod.Spec.Containers[0].VolumeMounts; len(m) != 1 || m[0].Name != pod.Spec.Volumes[0].Name || m[0].MountPath != "/data" {
		t.Error("the example pod's container does not mount the volume")
	}
}

func flagOf(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}
