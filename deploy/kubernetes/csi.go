package kubernetes

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plxfs/plxfs/connspec"
)

// Names and paths of the CSI deployment.
const (
	// CSIDriverName is the driver's name (package csi's DriverName; a test keeps them equal,
	// this package does not import the driver).
	CSIDriverName    = "plxfs.polyaxon.io"
	CSIName          = "plxfs-csi" // DaemonSet, ServiceAccount, ClusterRole and binding
	CSIPluginDir     = "/var/lib/kubelet/plugins/" + CSIDriverName
	CSISocket        = "/csi/csi.sock" // inside both containers
	CSIStateDir      = "/var/lib/plxfs-csi"
	CSICacheDir      = "/var/cache/plxfs-csi"
	KubeletPodsDir   = "/var/lib/kubelet/pods"
	KubeletRegistry  = "/var/lib/kubelet/plugins_registry"
	DefaultRegistrar = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.13.0"
	DefaultCSIMemory = "512Mi" // every volume of the node in one process
	DefaultCSICache  = "10GiB"
	DefaultCSIGrace  = "2m"
	// DefaultSecretsNamespace is where Polyaxon keeps connection secrets and configMaps.
	DefaultSecretsNamespace = "polyaxon"
	csiGraceSeconds         = 150 // above DefaultCSIGrace: the kubelet must not kill the driver mid-upload
	csiRegistrarName        = "node-driver-registrar"
	CSIContainerName        = "plxfs"
	ExampleVolumeName       = "data"
)

// CSIOptions configure BuildCSI. Zero values select the defaults.
type CSIOptions struct {
	Image     string // the plxfs image. Required.
	Namespace string // default "kube-system"
	// SecretsNamespace is where the connections' secrets and configMaps are (default
	// DefaultSecretsNamespace, Polyaxon's). A pod reads them from its own namespace only: when
	// the two differ, the output says how to copy them (CSI.Copies).
	SecretsNamespace string
	CacheSize        string // the node's cache, --cache-size (default DefaultCSICache)
	Memory           string // the driver's memory request and limit (default DefaultCSIMemory)
	Registrar        string // node-driver-registrar image (default DefaultRegistrar)
	ConfigMapName    string // the connections ConfigMap (default DefaultConfigMap)
}

// CSI is what `plxfs kube csi` prints: the CSIDriver, RBAC, the connections ConfigMap, the node
// DaemonSet, and an example pod with an inline volume.
type CSI struct {
	Driver         storagev1.CSIDriver
	ServiceAccount corev1.ServiceAccount
	ClusterRole    rbacv1.ClusterRole
	Binding        rbacv1.ClusterRoleBinding
	ConfigMap      corev1.ConfigMap
	DaemonSet      appsv1.DaemonSet
	Example        corev1.Pod
	Warnings       []string
	// Copies are the kubectl commands that copy the connections' secrets and configMaps from
	// SecretsNamespace into the driver's namespace; empty when they are the same namespace.
	Copies []string
}

// BuildCSI builds the CSI deployment for conns: the driver reads them from the ConfigMap, and
// their secrets and configMaps are placed in the driver's container as Polyaxon places them
// (mounted at their mountPath, else through envFrom), so that credential resolution finds them
// per volume as it does in a sidecar.
func BuildCSI(conns []connspec.Connection, opts CSIOptions) (*CSI, error) {
	if opts.Image == "" {
		return nil, fmt.Errorf("kube csi: an image is required")
	}
	if len(conns) == 0 {
		return nil, fmt.Errorf("kube csi: no gcs connections selected")
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&opts.Namespace, "kube-system")
	def(&opts.SecretsNamespace, DefaultSecretsNamespace)
	def(&opts.CacheSize, DefaultCSICache)
	def(&opts.Memory, DefaultCSIMemory)
	def(&opts.Registrar, DefaultRegistrar)
	def(&opts.ConfigMapName, DefaultConfigMap)
	mem, err := resource.ParseQuantity(opts.Memory)
	if err != nil {
		return nil, fmt.Errorf("kube csi: memory %q: %v", opts.Memory, err)
	}
	cm, warnings, err := connectionsConfigMap(opts.ConfigMapName, conns)
	if err != nil {
		return nil, err
	}
	cm.Namespace = opts.Namespace
	b := &builder{opts: Options{ConfigMapName: opts.ConfigMapName}, mem: mem,
		reserved: []string{ConfigDir, "/csi", CSIStateDir, CSICacheDir, KubeletPodsDir, "/dev/fuse"}}
	cr, err := b.credentials(conns)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{"app.kubernetes.io/name": CSIName}
	meta := func(kind, api string) metav1.TypeMeta { return metav1.TypeMeta{Kind: kind, APIVersion: api} }
	hostPath := func(name, path string, t corev1.HostPathType) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: path, Type: &t}}}
	}
	bidi := corev1.MountPropagationBidirectional
	driver := corev1.Container{
		Name:  CSIContainerName,
		Image: opts.Image,
		Args: []string{"csi", "--endpoint", "unix://" + CSISocket, "--node-id", "$(NODE_ID)",
			"--config", ConfigFile, "--state-dir", CSIStateDir, "--cache-dir", CSICacheDir,
			"--cache-size", opts.CacheSize, "--grace-period", DefaultCSIGrace, "--log-format", "json"},
		Env: append([]corev1.EnvVar{{Name: "NODE_ID", ValueFrom: &corev1.EnvVarSource{
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}, cr.env...),
		EnvFrom: cr.envFrom,
		// Privileged: FUSE mounts and Bidirectional propagation (Kubernetes allows that only in
		// privileged containers).
		SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
		Resources:       b.resources(),
		VolumeMounts: append([]corev1.VolumeMount{
			{Name: "socket-dir", MountPath: "/csi"},
			{Name: "kubelet-pods", MountPath: KubeletPodsDir, MountPropagation: &bidi},
			{Name: "state", MountPath: CSIStateDir, MountPropagation: &bidi},
			{Name: "cache", MountPath: CSICacheDir},
			{Name: "dev-fuse", MountPath: "/dev/fuse"},
			{Name: configVolume, MountPath: ConfigDir, ReadOnly: true},
		}, cr.mounts...),
	}
	registrar := corev1.Container{
		Name:  csiRegistrarName,
		Image: opts.Registrar,
		Args:  []string{"--csi-address=" + CSISocket, "--kubelet-registration-path=" + CSIPluginDir + "/csi.sock"},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("20Mi"), corev1.ResourceCPU: resource.MustParse("10m")}},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "socket-dir", MountPath: "/csi"},
			{Name: "registration-dir", MountPath: "/registration"},
		},
	}
	spec := corev1.PodSpec{
		ServiceAccountName:            CSIName,
		PriorityClassName:             "system-node-critical",
		TerminationGracePeriodSeconds: ptr(int64(csiGraceSeconds)),
		Containers:                    []corev1.Container{driver, registrar},
		Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		Volumes: append([]corev1.Volume{
			hostPath("socket-dir", CSIPluginDir, corev1.HostPathDirectoryOrCreate),
			hostPath("registration-dir", KubeletRegistry, corev1.HostPathDirectory),
			hostPath("kubelet-pods", KubeletPodsDir, corev1.HostPathDirectory),
			hostPath("state", CSIStateDir, corev1.HostPathDirectoryOrCreate),
			hostPath("cache", CSICacheDir, corev1.HostPathDirectoryOrCreate),
			hostPath("dev-fuse", "/dev/fuse", corev1.HostPathCharDev),
			b.configVolume(),
		}, cr.volumes...),
	}
	out := &CSI{Warnings: warnings, ConfigMap: cm}
	if opts.SecretsNamespace != opts.Namespace {
		var names []string
		seen := map[string]bool{}
		for _, conn := range conns {
			for _, r := range []struct {
				kind string
				ref  *connspec.Ref
			}{{"secret", conn.Secret}, {"configmap", conn.ConfigMap}} {
				if r.ref == nil || seen[r.kind+"/"+r.ref.Name] {
					continue
				}
				seen[r.kind+"/"+r.ref.Name] = true
				names = append(names, r.kind+" "+r.ref.Name)
				out.Copies = append(out.Copies, fmt.Sprintf("kubectl get %s %s -n %s -o yaml | sed -E '/^  (namespace|uid|resourceVersion|creationTimestamp):/d' | kubectl apply -n %s -f -",
					r.kind, r.ref.Name, opts.SecretsNamespace, opts.Namespace))
			}
		}
		if len(names) > 0 {
			out.Warnings = append(out.Warnings, fmt.Sprintf("the driver runs in namespace %s and reads the connections' %s there, while they are in %s: copy them (the commands are at the top of the output), or run the driver in %s (--namespace %s)",
				opts.Namespace, strings.Join(names, ", "), opts.SecretsNamespace, opts.SecretsNamespace, opts.SecretsNamespace))
		}
	}
	out.Driver = storagev1.CSIDriver{
		TypeMeta:   meta("CSIDriver", "storage.k8s.io/v1"),
		ObjectMeta: metav1.ObjectMeta{Name: CSIDriverName, Labels: labels},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired: ptr(false),
			PodInfoOnMount: ptr(true),
			// The driver keeps no secrets across its restarts: the kubelet publishing again
			// hands a volume's nodePublishSecretRef back.
			RequiresRepublish:    ptr(true),
			FSGroupPolicy:        ptr(storagev1.NoneFSGroupPolicy),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent, storagev1.VolumeLifecycleEphemeral},
		},
	}
	out.ServiceAccount = corev1.ServiceAccount{TypeMeta: meta("ServiceAccount", "v1"),
		ObjectMeta: metav1.ObjectMeta{Name: CSIName, Namespace: opts.Namespace, Labels: labels}}
	// The driver itself calls no Kubernetes API (the kubelet hands it secrets); the role only
	// lets it read Node objects, which node-driver-registrar deployments conventionally allow.
	out.ClusterRole = rbacv1.ClusterRole{TypeMeta: meta("ClusterRole", "rbac.authorization.k8s.io/v1"),
		ObjectMeta: metav1.ObjectMeta{Name: CSIName, Labels: labels},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get"}}}}
	out.Binding = rbacv1.ClusterRoleBinding{TypeMeta: meta("ClusterRoleBinding", "rbac.authorization.k8s.io/v1"),
		ObjectMeta: metav1.ObjectMeta{Name: CSIName, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: CSIName},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: CSIName, Namespace: opts.Namespace}}}
	out.DaemonSet = appsv1.DaemonSet{TypeMeta: meta("DaemonSet", "apps/v1"),
		ObjectMeta: metav1.ObjectMeta{Name: CSIName, Namespace: opts.Namespace, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		}}
	out.Example = corev1.Pod{TypeMeta: meta("Pod", "v1"),
		ObjectMeta: metav1.ObjectMeta{Name: "plxfs-csi-example"},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: MainName, Image: "python:3.12-slim",
				Command:      []string{"ls", "-l", "/data"},
				VolumeMounts: []corev1.VolumeMount{{Name: ExampleVolumeName, MountPath: "/data", ReadOnly: true}}}},
			Volumes: []corev1.Volume{{Name: ExampleVolumeName, VolumeSource: corev1.VolumeSource{CSI: &corev1.CSIVolumeSource{
				Driver: CSIDriverName, ReadOnly: ptr(true),
				VolumeAttributes: map[string]string{"connection": conns[0].Name, "cacheSize": "1GiB"},
			}}}},
		}}
	return out, nil
}

// WriteYAML writes every object as one YAML document, each introduced by a comment.
func (c *CSI) WriteYAML(w io.Writer, from string) error {
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Generated by `plxfs kube csi` from %s.\n", from)
	if len(c.Copies) > 0 {
		fmt.Fprintf(&buf, "# The driver reads the connections' secrets and configMaps from its own namespace (%s).\n", c.DaemonSet.Namespace)
		buf.WriteString("# Copy them there before applying this (or run the driver where they are, with --namespace):\n")
		for _, cp := range c.Copies {
			fmt.Fprintf(&buf, "#   %s\n", cp)
		}
	}
	for i, d := range []struct {
		what string
		obj  any
	}{
		{"The CSIDriver: pods use it as volumes[].csi.driver: " + CSIDriverName + ".", c.Driver},
		{"The driver's identity (it calls no Kubernetes API itself).", c.ServiceAccount},
		{"", c.ClusterRole},
		{"", c.Binding},
		{"The connections the driver serves (volumeAttributes connection: NAME).", c.ConfigMap},
		{"The node plugin: one privileged plxfs per node serving every volume with one cache, and the kubelet registrar.", c.DaemonSet},
		{"An example pod reading a connection through an inline (ephemeral) volume.", c.Example},
	} {
		data, err := marshalYAML(d.obj)
		if err != nil {
			return err
		}
		if i > 0 {
			buf.WriteString("---\n")
		}
		if d.what != "" {
			fmt.Fprintf(&buf, "# %s\n", d.what)
		}
		buf.Write(data)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
