package kubernetes

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"path"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/plxfs/plxfs/connspec"
)

// Paths and names shared by the generated pods and the example manifests.
const (
	// DefaultMemory is the memory request and limit of every plxfs container: the budget for
	// plxfs with its default buffer and upload flags, to be kept in line with its measured RSS.
	// Change it here and in the example manifests (a test keeps them equal).
	DefaultMemory = "256Mi"
	// DefaultCPU is the CPU request of every plxfs container (no limit: throttling a FUSE daemon
	// stalls every reader).
	DefaultCPU = "100m"

	// DefaultCacheSize is plxfs mount --cache-size: the bound on cached chunks in CacheDir's
	// emptyDir (node disk, not memory). Staged writes live there too, beyond this bound.
	DefaultCacheSize = "1GiB"

	DefaultMountPath = "/plx"                   // where the mount appears, in both containers
	DefaultInitPath  = "/plx-context/artifacts" // where plxfs init copies, as Polyaxon does
	DefaultConfigMap = "plxfs-connections"      // the ConfigMap holding the connections file
	ConfigDir        = "/etc/plxfs"             // where that ConfigMap is mounted
	ConfigKey        = "connections.yaml"       // its one key
	ConfigFile       = ConfigDir + "/" + ConfigKey
	RunDir           = "/run/plxfs"       // emptyDir for the ready file and the exit sentinel
	ReadyFile        = RunDir + "/ready"  // plxfs mount --ready-file
	DoneFile         = RunDir + "/done"   // plxfs mount --exit-on-file (non-native sidecar)
	CacheDir         = "/var/cache/plxfs" // emptyDir for the chunk cache
	SidecarName      = "plxfs"            // the sidecar container's name
	MainName         = "main"             // the main container's name in the fragment
	NonRootUID       = 1000               // the plxfs user of the image (Dockerfile)
	mountVolume      = "plx"              // the emptyDir the mount (or init copy) lives on
	runVolume        = "plxfs-run"        // RunDir's emptyDir
	cacheVolume      = "plxfs-cache"      // CacheDir's emptyDir
	configVolume     = "plxfs-config"     // the connections file
	probeTimeout     = "5s"               // plxfs wait --timeout in the startup probe
	probeSeconds     = 10                 // the probe's own timeout, above probeTimeout
	probeFailures    = 30                 // 30 probes of up to 5s: 2.5 minutes to mount

	// DefaultGrace is the mount's --grace-period in a pod: how long pending uploads may take
	// after SIGTERM. The pod's terminationGracePeriodSeconds is graceMargin more, so that the
	// kubelet does not kill plxfs while it uploads.
	DefaultGrace = 100 * time.Second
	graceMargin  = 20 * time.Second
)

// Options says how plxfs runs in the pod. The zero value (plus Image) is a regular sidecar;
// the command line defaults to Native.
type Options struct {
	Image         string // plxfs image; required
	MountPath     string // where the connections appear; "" means DefaultMountPath, or DefaultInitPath with Init
	ConfigMapName string // the connections file's ConfigMap; "" means DefaultConfigMap
	Native        bool   // an init container with restartPolicy Always, instead of a container with --exit-on-file
	Init          bool   // one plain `plxfs init` init container per connection, instead of a mount
	Memory        string // memory request and limit; "" means DefaultMemory
	// CacheSize is the mount's --cache-size (plxfs's size syntax, such as 10GiB); "" means
	// DefaultCacheSize. The caller checks its syntax.
	CacheSize string
	// ReadOnly mounts with --read-only (datasets): changes fail with EROFS, and the kernel
	// reads wholly cached files straight from the cache (FUSE passthrough).
	ReadOnly bool
	// GracePeriod is the mount's --grace-period; 0 means DefaultGrace. The pod spec's
	// terminationGracePeriodSeconds is set to it plus a margin.
	GracePeriod time.Duration
}

// Pod is what plxfs adds to a pod.
type Pod struct {
	// ConfigMap holds the connections file (key ConfigKey).
	ConfigMap corev1.ConfigMap
	// Spec is a fragment to merge into the pod spec: InitContainers and Containers (plxfs's, and
	// MainName carrying only what the main container must add), Volumes.
	Spec corev1.PodSpec
	// Warnings name what was left out of the ConfigMap (never the values).
	Warnings []string
}

// Build returns the objects that run plxfs over conns. conns must be non-empty gcs connections,
// as connspec returns them; conflicting secrets or mount paths are errors naming the connections.
func Build(conns []connspec.Connection, opts Options) (*Pod, error) {
	if len(conns) == 0 {
		return nil, fmt.Errorf("no connections selected: plxfs needs at least one gcs connection")
	}
	if opts.Image == "" {
		return nil, fmt.Errorf("no image given: pass the plxfs image (for example --image plxfs:latest)")
	}
	if opts.MountPath == "" {
		opts.MountPath = DefaultMountPath
		if opts.Init {
			opts.MountPath = DefaultInitPath
		}
	}
	if !path.IsAbs(opts.MountPath) || path.Clean(opts.MountPath) != opts.MountPath || opts.MountPath == "/" {
		return nil, fmt.Errorf("mount path %q: give an absolute, clean directory other than /, such as %s", opts.MountPath, DefaultMountPath)
	}
	if opts.ConfigMapName == "" {
		opts.ConfigMapName = DefaultConfigMap
	}
	if opts.Memory == "" {
		opts.Memory = DefaultMemory
	}
	if opts.CacheSize == "" {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.GracePeriod == 0 {
		opts.GracePeriod = DefaultGrace
	}
	if opts.GracePeriod < time.Second {
		return nil, fmt.Errorf("grace period %v: give a duration of at least 1s, such as %v", opts.GracePeriod, DefaultGrace)
	}
	mem, err := resource.ParseQuantity(opts.Memory)
	if err != nil || mem.Sign() <= 0 {
		return nil, fmt.Errorf("memory %q: give a Kubernetes quantity such as %s", opts.Memory, DefaultMemory)
	}
	b := &builder{opts: opts, mem: mem, reserved: []string{opts.MountPath, ConfigDir}}
	if !opts.Init {
		b.reserved = append(b.reserved, RunDir, CacheDir)
	}
	pod := &Pod{}
	pod.ConfigMap, pod.Warnings, err = connectionsConfigMap(opts.ConfigMapName, conns)
	if err != nil {
		return nil, err
	}
	if opts.Init {
		err = b.initPod(conns)
	} else {
		err = b.mountPod(conns)
	}
	if err != nil {
		return nil, err
	}
	pod.Spec = b.spec
	return pod, nil
}

type builder struct {
	opts     Options
	mem      resource.Quantity
	reserved []string // paths plxfs itself mounts; credentials may not land on or under them
	spec     corev1.PodSpec
}

// mountPod builds the sidecar that mounts every connection.
func (b *builder) mountPod(conns []connspec.Connection) error {
	creds, err := b.credentials(conns)
	if err != nil {
		return err
	}
	args := []string{"mount", "--config", ConfigFile, "--ready-file", ReadyFile, "--cache-dir", CacheDir, "--cache-size", b.opts.CacheSize, "--grace-period", b.opts.GracePeriod.String()}
	if !b.opts.Native {
		args = append(args, "--exit-on-file", DoneFile)
	}
	if b.opts.ReadOnly {
		args = append(args, "--read-only")
	}
	args = append(args, b.opts.MountPath)
	bidirectional, hostToContainer := corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer
	sidecar := corev1.Container{
		Name:    SidecarName,
		Image:   b.opts.Image,
		Args:    args,
		EnvFrom: creds.envFrom,
		Env:     creds.env,
		VolumeMounts: append([]corev1.VolumeMount{
			{Name: mountVolume, MountPath: b.opts.MountPath, MountPropagation: &bidirectional},
			{Name: runVolume, MountPath: RunDir},
			{Name: cacheVolume, MountPath: CacheDir},
			{Name: configVolume, MountPath: ConfigDir, ReadOnly: true},
		}, creds.mounts...),
		Resources: b.resources(),
		StartupProbe: &corev1.Probe{
			ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{
				Command: []string{"plxfs", "wait", "--timeout", probeTimeout, b.opts.MountPath},
			}},
			TimeoutSeconds:   probeSeconds,
			PeriodSeconds:    probeSeconds,
			FailureThreshold: probeFailures,
		},
		// Bidirectional propagation is allowed only in privileged containers; privileged also
		// gives the container /dev/fuse and CAP_SYS_ADMIN.
		SecurityContext: &corev1.SecurityContext{Privileged: ptr(true)},
	}
	main := corev1.Container{
		Name:         MainName,
		VolumeMounts: []corev1.VolumeMount{{Name: mountVolume, MountPath: b.opts.MountPath, MountPropagation: &hostToContainer}},
	}
	if b.opts.Native {
		sidecar.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		b.spec.InitContainers = []corev1.Container{sidecar}
		b.spec.Containers = []corev1.Container{main}
	} else {
		// The main container waits for ReadyFile and writes DoneFile when it is finished.
		main.VolumeMounts = append(main.VolumeMounts, corev1.VolumeMount{Name: runVolume, MountPath: RunDir})
		b.spec.Containers = []corev1.Container{sidecar, main}
	}
	b.spec.Volumes = append([]corev1.Volume{
		emptyDir(mountVolume), emptyDir(runVolume), emptyDir(cacheVolume), b.configVolume(),
	}, creds.volumes...)
	b.spec.TerminationGracePeriodSeconds = ptr(terminationSeconds(b.opts.GracePeriod))
	return nil
}

// initPod builds one `plxfs init` init container per connection, each with only its own
// connection's credentials.
func (b *builder) initPod(conns []connspec.Connection) error {
	vols := map[string]bool{}
	for _, conn := range conns {
		creds, err := b.credentials([]connspec.Connection{conn})
		if err != nil {
			return err
		}
		b.spec.InitContainers = append(b.spec.InitContainers, corev1.Container{
			Name:  label("plxfs-init-", conn.Name),
			Image: b.opts.Image,
			Args: []string{"init", "--config", ConfigFile, "--connection", conn.Name,
				"--path", path.Join(b.opts.MountPath, conn.Name)},
			EnvFrom: creds.envFrom,
			Env:     creds.env,
			VolumeMounts: append([]corev1.VolumeMount{
				{Name: mountVolume, MountPath: b.opts.MountPath},
				{Name: configVolume, MountPath: ConfigDir, ReadOnly: true},
			}, creds.mounts...),
			Resources: b.resources(),
			SecurityContext: &corev1.SecurityContext{
				RunAsUser:                ptr(int64(NonRootUID)),
				RunAsNonRoot:             ptr(true),
				AllowPrivilegeEscalation: ptr(false),
				Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			},
		})
		for _, v := range creds.volumes {
			if !vols[v.Name] {
				vols[v.Name] = true
				b.spec.Volumes = append(b.spec.Volumes, v)
			}
		}
	}
	b.spec.Containers = []corev1.Container{{
		Name:         MainName,
		VolumeMounts: []corev1.VolumeMount{{Name: mountVolume, MountPath: b.opts.MountPath}},
	}}
	b.spec.Volumes = append([]corev1.Volume{emptyDir(mountVolume), b.configVolume()}, b.spec.Volumes...)
	return nil
}

// terminationSeconds is the pod's terminationGracePeriodSeconds for a mount whose
// --grace-period is grace: grace (rounded up) plus graceMargin for the unmount and exit.
func terminationSeconds(grace time.Duration) int64 {
	return int64((grace + graceMargin + time.Second - 1) / time.Second)
}

func (b *builder) resources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceMemory: b.mem.DeepCopy(),
			corev1.ResourceCPU:    resource.MustParse(DefaultCPU),
		},
		Limits: corev1.ResourceList{corev1.ResourceMemory: b.mem.DeepCopy()},
	}
}

func (b *builder) configVolume() corev1.Volume {
	return corev1.Volume{Name: configVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: b.opts.ConfigMapName},
		Items:                []corev1.KeyToPath{{Key: ConfigKey, Path: ConfigKey}},
	}}}
}

// creds is what a container needs for some connections' credentials.
type creds struct {
	envFrom []corev1.EnvFromSource
	env     []corev1.EnvVar
	mounts  []corev1.VolumeMount
	volumes []corev1.Volume
}

// source is one distinct secret or configMap, merged over the connections that use it.
type source struct {
	kind      string // "secret" or "configMap"
	name      string
	volume    string
	firstConn string
	allKeys   bool // some connection wants every key (no items)
	items     []string
	mode      *int
	mounted   bool
	env       bool     // every key through envFrom
	envItems  []string // these keys as environment variables
}

// credentials merges conns' secrets and configMaps as Polyaxon places them: with a mountPath,
// one volume per distinct name (items are the union; any connection without items means every
// key), mounted read-only at each distinct mountPath; without one, every key through envFrom,
// or with items only those keys, each an environment variable.
func (b *builder) credentials(conns []connspec.Connection) (creds, error) {
	var order []*source
	byKey := map[string]*source{}
	mountedAt := map[string]string{} // mountPath -> "kind name", to reject two sources on one path
	var out creds
	for _, conn := range conns {
		for _, r := range []struct {
			kind string
			ref  *connspec.Ref
		}{{"secret", conn.Secret}, {"configMap", conn.ConfigMap}} {
			if r.ref == nil {
				continue
			}
			if r.ref.Name == "" {
				return creds{}, fmt.Errorf("connection %q: %s.name is empty: name the Kubernetes %s", conn.Name, r.kind, r.kind)
			}
			key := r.kind + " " + r.ref.Name
			s := byKey[key]
			if s == nil {
				s = &source{kind: r.kind, name: r.ref.Name, volume: label(strings.ToLower(r.kind)+"-", r.ref.Name), firstConn: conn.Name}
				byKey[key] = s
				order = append(order, s)
			}
			if r.ref.MountPath == "" {
				// As Polyaxon does: every key through envFrom, or only the items, each an
				// environment variable of its own name.
				if len(r.ref.Items) == 0 {
					s.env = true
				}
				for _, it := range r.ref.Items {
					if !slices.Contains(s.envItems, it) {
						s.envItems = append(s.envItems, it)
					}
				}
				continue
			}
			mp := r.ref.MountPath
			if !path.IsAbs(mp) || path.Clean(mp) != mp || mp == "/" {
				return creds{}, fmt.Errorf("connection %q: %s.mountPath %q: give an absolute, clean path other than /", conn.Name, r.kind, mp)
			}
			for _, res := range b.reserved {
				if mp == res || strings.HasPrefix(mp, res+"/") {
					return creds{}, fmt.Errorf("connection %q: %s.mountPath %q is on or under %s, which plxfs mounts itself: choose another mountPath", conn.Name, r.kind, mp, res)
				}
			}
			if other, ok := mountedAt[mp]; ok && other != key {
				return creds{}, fmt.Errorf("connection %q: %s.mountPath %q is also the mountPath of %s: give each secret or configMap its own mountPath", conn.Name, r.kind, mp, other)
			}
			if r.ref.DefaultMode != nil && s.mode != nil && *r.ref.DefaultMode != *s.mode {
				return creds{}, fmt.Errorf("connection %q: %s %q has defaultMode %#o, but connection %q gives it %#o: make them agree", conn.Name, r.kind, r.ref.Name, *r.ref.DefaultMode, s.firstConn, *s.mode)
			}
			if r.ref.DefaultMode != nil {
				s.mode = r.ref.DefaultMode
			}
			if len(r.ref.Items) == 0 {
				s.allKeys = true
			}
			for _, it := range r.ref.Items {
				if !slices.Contains(s.items, it) {
					s.items = append(s.items, it)
				}
			}
			if _, ok := mountedAt[mp]; !ok {
				mountedAt[mp] = key
				out.mounts = append(out.mounts, corev1.VolumeMount{Name: s.volume, MountPath: mp, ReadOnly: true})
			}
			s.mounted = true
		}
	}
	for _, s := range order {
		if s.env {
			if s.kind == "secret" {
				out.envFrom = append(out.envFrom, corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.name}}})
			} else {
				out.envFrom = append(out.envFrom, corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.name}}})
			}
		}
		for _, it := range s.envItems {
			ev := corev1.EnvVar{Name: it, ValueFrom: &corev1.EnvVarSource{}}
			if s.kind == "secret" {
				ev.ValueFrom.SecretKeyRef = &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.name}, Key: it}
			} else {
				ev.ValueFrom.ConfigMapKeyRef = &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: s.name}, Key: it}
			}
			out.env = append(out.env, ev)
		}
		if !s.mounted {
			continue
		}
		var items []corev1.KeyToPath
		if !s.allKeys {
			for _, it := range s.items {
				items = append(items, corev1.KeyToPath{Key: it, Path: it})
			}
		}
		var mode *int32
		if s.mode != nil {
			mode = ptr(int32(*s.mode))
		}
		v := corev1.Volume{Name: s.volume}
		if s.kind == "secret" {
			v.Secret = &corev1.SecretVolumeSource{SecretName: s.name, Items: items, DefaultMode: mode}
		} else {
			v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.name}, Items: items, DefaultMode: mode}
		}
		out.volumes = append(out.volumes, v)
	}
	return out, nil
}

// fileConnection is one connection as written to the ConfigMap, in Polyaxon's layout.
type fileConnection struct {
	Name        string     `yaml:"name"`
	Kind        string     `yaml:"kind"`
	Description string     `yaml:"description,omitempty"`
	Tags        []string   `yaml:"tags,omitempty,flow"`
	Schema      fileSchema `yaml:"schema"`
	Secret      *fileRef   `yaml:"secret,omitempty"`
	ConfigMap   *fileRef   `yaml:"configMap,omitempty"`
}

type fileSchema struct {
	Bucket string `yaml:"bucket"`
}

type fileRef struct {
	Name        string   `yaml:"name"`
	MountPath   string   `yaml:"mountPath,omitempty"`
	Items       []string `yaml:"items,omitempty,flow"`
	DefaultMode *int     `yaml:"defaultMode,omitempty"`
}

func toFileRef(r *connspec.Ref) *fileRef {
	if r == nil {
		return nil
	}
	return &fileRef{Name: r.Name, MountPath: r.MountPath, Items: r.Items, DefaultMode: r.DefaultMode}
}

// connectionsConfigMap writes conns as a connections file in a ConfigMap.
func connectionsConfigMap(name string, conns []connspec.Connection) (corev1.ConfigMap, []string, error) {
	var file struct {
		Connections []fileConnection `yaml:"connections"`
	}
	var warnings []string
	for _, c := range conns {
		if c.Kind != "gcs" {
			return corev1.ConfigMap{}, nil, fmt.Errorf("connection %q: kind %q is not mounted by plxfs: select only gcs connections", c.Name, c.Kind)
		}
		bucket := "gs://" + c.Bucket
		if p := strings.Trim(c.Prefix, "/"); p != "" {
			bucket += "/" + p
		}
		file.Connections = append(file.Connections, fileConnection{
			Name: c.Name, Kind: c.Kind, Description: c.Description, Tags: c.Tags,
			Schema: fileSchema{Bucket: bucket},
			Secret: toFileRef(c.Secret), ConfigMap: toFileRef(c.ConfigMap),
		})
		var left []string
		for k := range c.Schema {
			if k != "bucket" {
				left = append(left, "schema."+k)
			}
		}
		for _, e := range c.Env {
			left = append(left, "env "+e.Name)
		}
		if len(left) > 0 {
			slices.Sort(left)
			warnings = append(warnings, fmt.Sprintf("connection %q: %s left out of ConfigMap %q (values may be secret); give them to plxfs through a secret instead", c.Name, strings.Join(left, ", "), name))
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(file); err != nil {
		return corev1.ConfigMap{}, nil, fmt.Errorf("writing the connections file: %w", err)
	}
	data := buf.Bytes()
	return corev1.ConfigMap{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": "plxfs"}},
		Data:       map[string]string{ConfigKey: string(data)},
	}, warnings, nil
}

func emptyDir(name string) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
}

// label makes prefix+name a DNS-1123 label (volume and container names): lower case, [a-z0-9-],
// at most 63 bytes. When name had to change, a hash of the original keeps distinct names distinct.
func label(prefix, name string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('-')
		}
	}
	s := prefix + strings.Trim(sb.String(), "-")
	if s == prefix+name && len(s) <= 63 {
		return s
	}
	h := fnv.New32a()
	h.Write([]byte(name))
	suffix := fmt.Sprintf("-%08x", h.Sum32())
	if len(s) > 63-len(suffix) {
		s = s[:63-len(suffix)]
	}
	return strings.TrimRight(s, "-") + suffix
}

func ptr[T any](v T) *T { return &v }
