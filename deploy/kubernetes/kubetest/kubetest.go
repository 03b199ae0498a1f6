package kubetest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/plxfs/plxfs/connspec"
)

// Docs are the documents of one YAML stream, by type, in stream order.
type Docs struct {
	ConfigMaps []corev1.ConfigMap
	Jobs       []batchv1.Job
	// Specs are documents without apiVersion/kind, decoded as PodSpec fragments (the output of
	// `plxfs kube sidecar`).
	Specs []corev1.PodSpec
}

// Decode splits data on "---" and decodes every non-empty document strictly (unknown or
// duplicate fields are errors) into a ConfigMap, a batch/v1 Job or, without a kind, a PodSpec.
func Decode(data []byte) (Docs, error) {
	var docs Docs
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
		var probe map[string]any
		if err := yaml.Unmarshal(doc, &probe); err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
		if len(probe) == 0 {
			continue // comments only
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &tm); err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			var cm corev1.ConfigMap
			err = yaml.UnmarshalStrict(doc, &cm)
			docs.ConfigMaps = append(docs.ConfigMaps, cm)
		case "batch/v1 Job":
			var job batchv1.Job
			err = yaml.UnmarshalStrict(doc, &job)
			docs.Jobs = append(docs.Jobs, job)
		case " ":
			var spec corev1.PodSpec
			err = yaml.UnmarshalStrict(doc, &spec)
			docs.Specs = append(docs.Specs, spec)
		default:
			err = fmt.Errorf("unexpected apiVersion %q kind %q", tm.APIVersion, tm.Kind)
		}
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", i, err)
		}
	}
}

// Connections parses the connections file that spec's plxfs containers read (`--config FILE`,
// mounted from a ConfigMap volume) out of the ConfigMap in docs, with connspec, and returns
// its gcs connections.
func Connections(docs Docs, spec corev1.PodSpec) ([]connspec.Connection, error) {
	var file string
	var ctr corev1.Container
	for _, c := range allContainers(spec) {
		if f := flagValue(c.container.Args, "--config"); isPlxfs(c.container) && f != "" {
			file, ctr = f, c.container
			break
		}
	}
	if file == "" {
		return nil, fmt.Errorf("no plxfs container with --config FILE")
	}
	vm, ok := mountCovering(ctr, file)
	if !ok {
		return nil, fmt.Errorf("container %q: no volume mounted over --config %s", ctr.Name, file)
	}
	vol, ok := volume(spec, vm.Name)
	if !ok || vol.ConfigMap == nil {
		return nil, fmt.Errorf("container %q: --config %s is not on a configMap volume", ctr.Name, file)
	}
	key := strings.TrimPrefix(file, vm.MountPath+"/")
	for _, it := range vol.ConfigMap.Items {
		if it.Path == key {
			key = it.Key
		}
	}
	for _, cm := range docs.ConfigMaps {
		if cm.Name != vol.ConfigMap.Name {
			continue
		}
		data, ok := cm.Data[key]
		if !ok {
			return nil, fmt.Errorf("ConfigMap %q has no key %q", cm.Name, key)
		}
		cat, err := connspec.ParseYAML("ConfigMap "+cm.Name+" "+key, []byte(data))
		if err != nil {
			return nil, err
		}
		var conns []connspec.Connection
		for _, c := range cat.Connections {
			if c.Kind == "gcs" {
				conns = append(conns, c)
			}
		}
		if len(conns) == 0 {
			return nil, fmt.Errorf("ConfigMap %q: no gcs connections", cm.Name)
		}
		return conns, nil
	}
	return nil, fmt.Errorf("no ConfigMap %q in the manifest", vol.ConfigMap.Name)
}

// CheckPod returns every way spec disagrees with conns and with how plxfs must run: memory is
// the expected memory request and limit of plxfs containers. No errors means the pod is right.
func CheckPod(spec corev1.PodSpec, conns []connspec.Connection, memory string) []error {
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	names := map[string]bool{}
	for _, v := range spec.Volumes {
		if msgs := validation.IsDNS1123Label(v.Name); len(msgs) > 0 {
			fail("volume %q: %s", v.Name, strings.Join(msgs, "; "))
		}
		if names[v.Name] {
			fail("volume %q defined twice", v.Name)
		}
		names[v.Name] = true
	}
	var mounters, initers, mains []corev1.Container
	var nativeMount bool
	for _, c := range allContainers(spec) {
		if msgs := validation.IsDNS1123Label(c.container.Name); len(msgs) > 0 {
			fail("container %q: %s", c.container.Name, strings.Join(msgs, "; "))
		}
		paths := map[string]bool{}
		for _, vm := range c.container.VolumeMounts {
			if !names[vm.Name] {
				fail("container %q mounts volume %q, which is not defined", c.container.Name, vm.Name)
			}
			if paths[vm.MountPath] {
				fail("container %q mounts two volumes at %s", c.container.Name, vm.MountPath)
			}
			paths[vm.MountPath] = true
		}
		switch {
		case isPlxfs(c.container) && c.container.Args[0] == "mount":
			mounters = append(mounters, c.container)
			nativeMount = c.init
			if c.init && (c.container.RestartPolicy == nil || *c.container.RestartPolicy != corev1.ContainerRestartPolicyAlways) {
				fail("init container %q runs plxfs mount without restartPolicy: Always, so the pod never starts", c.container.Name)
			}
		case isPlxfs(c.container) && c.container.Args[0] == "init":
			initers = append(initers, c.container)
			if !c.init || c.container.RestartPolicy != nil {
				fail("container %q runs plxfs init but is not a plain init container", c.container.Name)
			}
		case !c.init:
			mains = append(mains, c.container)
		}
	}
	if len(mains) == 0 {
		fail("no main container")
	}
	switch {
	case len(mounters) == 1 && len(initers) == 0:
		errs = append(errs, checkMount(spec, mounters[0], nativeMount, mains, conns, memory)...)
	case len(mounters) == 0 && len(initers) > 0:
		errs = append(errs, checkInit(spec, initers, mains, conns, memory)...)
	default:
		fail("want one plxfs mount container or only plxfs init containers, found %d and %d", len(mounters), len(initers))
	}
	return errs
}

func checkMount(spec corev1.PodSpec, m corev1.Container, native bool, mains []corev1.Container, conns []connspec.Connection, memory string) []error {
	var errs []error
	fail := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("container %q: "+format, append([]any{m.Name}, args...)...))
	}
	mp := m.Args[len(m.Args)-1]
	vm, ok := mountAt(m, mp)
	switch {
	case !ok:
		fail("mountpoint %s is not a volume mount", mp)
	case vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationBidirectional:
		fail("mountpoint %s needs mountPropagation Bidirectional", mp)
	}
	if vol, ok := volume(spec, vm.Name); ok && vol.EmptyDir == nil {
		fail("mountpoint %s should be an emptyDir", mp)
	}
	if m.SecurityContext == nil || m.SecurityContext.Privileged == nil || !*m.SecurityContext.Privileged {
		fail("not privileged: Bidirectional propagation and FUSE need it")
	}
	if p := m.StartupProbe; p == nil || p.Exec == nil || !slices.Contains(p.Exec.Command, "wait") || !slices.Contains(p.Exec.Command, mp) {
		fail("needs a startupProbe running plxfs wait %s", mp)
	}
	if f := flagValue(m.Args, "--ready-file"); f == "" {
		fail("no --ready-file")
	} else if under(f, mp) {
		fail("--ready-file %s is inside the FUSE mountpoint", f)
	}
	done := flagValue(m.Args, "--exit-on-file")
	if !native && done == "" {
		fail("a regular sidecar needs --exit-on-file, or the job never finishes")
	}
	if native && done != "" {
		fail("a native sidecar gets SIGTERM; --exit-on-file is for regular sidecars")
	}
	if done != "" && under(done, mp) {
		fail("--exit-on-file %s is inside the FUSE mountpoint", done)
	}
	errs = append(errs, checkMemory(m, memory)...)
	errs = append(errs, checkCreds(spec, m, conns)...)
	for _, main := range mains {
		got, ok := mountOf(main, vm.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("main container %q does not mount volume %q (the plxfs mount)", main.Name, vm.Name))
		case got.MountPropagation == nil || *got.MountPropagation != corev1.MountPropagationHostToContainer:
			errs = append(errs, fmt.Errorf("main container %q: volume %q needs mountPropagation HostToContainer", main.Name, vm.Name))
		}
		if done == "" {
			continue
		}
		if dm, ok := mountCovering(m, done); !ok {
			fail("--exit-on-file %s is on no volume", done)
		} else if mm, ok := mountOf(main, dm.Name); !ok || mm.MountPath != dm.MountPath || mm.ReadOnly {
			errs = append(errs, fmt.Errorf("main container %q cannot create %s: it must mount volume %q writable at %s", main.Name, done, dm.Name, dm.MountPath))
		} else if len(main.Command)+len(main.Args) > 0 && !strings.Contains(strings.Join(append(main.Command, main.Args...), " "), done) {
			errs = append(errs, fmt.Errorf("main container %q never creates %s, so the sidecar never exits", main.Name, done))
		}
	}
	return errs
}

func checkInit(spec corev1.PodSpec, inits, mains []corev1.Container, conns []connspec.Connection, memory string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, c := range inits {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("init container %q: "+format, append([]any{c.Name}, args...)...))
		}
		if sc := c.SecurityContext; sc != nil && (sc.Privileged != nil && *sc.Privileged || sc.Capabilities != nil && len(sc.Capabilities.Add) > 0) {
			fail("plxfs init needs no privileges")
		}
		name := flagValue(c.Args, "--connection")
		i := slices.IndexFunc(conns, func(cn connspec.Connection) bool { return cn.Name == name })
		if i < 0 {
			fail("--connection %q is not a connection of the connections file", name)
			continue
		}
		seen[name] = true
		dest := flagValue(c.Args, "--path")
		vm, ok := mountCovering(c, dest)
		if dest == "" || !ok {
			fail("--path %q is on no volume", dest)
		} else {
			for _, main := range mains {
				if mm, ok := mountOf(main, vm.Name); !ok || mm.MountPath != vm.MountPath {
					errs = append(errs, fmt.Errorf("main container %q does not see %s: mount volume %q at %s", main.Name, dest, vm.Name, vm.MountPath))
				}
			}
		}
		errs = append(errs, checkMemory(c, memory)...)
		errs = append(errs, checkCreds(spec, c, conns[i:i+1])...)
	}
	for _, cn := range conns {
		if !seen[cn.Name] {
			errs = append(errs, fmt.Errorf("connection %q has no plxfs init container", cn.Name))
		}
	}
	return errs
}

// checkCreds checks that c gets each connection's secret and configMap as its spec says, the
// way Polyaxon places them: mounted read-only at exactly mountPath from the named object (items
// and defaultMode honoured); without a mountPath, through envFrom, or with items each key as an
// environment variable.
func checkCreds(spec corev1.PodSpec, c corev1.Container, conns []connspec.Connection) []error {
	var errs []error
	for _, cn := range conns {
		fail := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("container %q, connection %q: "+format, append([]any{c.Name, cn.Name}, args...)...))
		}
		for _, r := range []struct {
			kind string
			ref  *connspec.Ref
		}{{"secret", cn.Secret}, {"configMap", cn.ConfigMap}} {
			if r.ref == nil {
				continue
			}
			if r.ref.MountPath == "" {
				if len(r.ref.Items) == 0 && !hasEnvFrom(c, r.kind, r.ref.Name) {
					fail("%s %q has no mountPath and no items but is not in envFrom", r.kind, r.ref.Name)
				}
				for _, it := range r.ref.Items {
					if !hasEnvItem(c, r.kind, r.ref.Name, it) {
						fail("%s %q item %q (no mountPath) is not an environment variable", r.kind, r.ref.Name, it)
					}
				}
				continue
			}
			vm, ok := mountAt(c, r.ref.MountPath)
			if !ok {
				fail("%s %q is not mounted at its mountPath %s", r.kind, r.ref.Name, r.ref.MountPath)
				continue
			}
			if !vm.ReadOnly {
				fail("%s %q at %s should be mounted read-only", r.kind, r.ref.Name, r.ref.MountPath)
			}
			vol, _ := volume(spec, vm.Name)
			var name string
			var items []corev1.KeyToPath
			var mode *int32
			switch {
			case r.kind == "secret" && vol.Secret != nil:
				name, items, mode = vol.Secret.SecretName, vol.Secret.Items, vol.Secret.DefaultMode
			case r.kind == "configMap" && vol.ConfigMap != nil:
				name, items, mode = vol.ConfigMap.Name, vol.ConfigMap.Items, vol.ConfigMap.DefaultMode
			}
			if name != r.ref.Name {
				fail("%s at %s comes from volume %q, not from %s %q", r.ref.MountPath, r.kind, vm.Name, r.kind, r.ref.Name)
				continue
			}
			for _, want := range r.ref.Items {
				if len(items) > 0 && !slices.Contains(items, corev1.KeyToPath{Key: want, Path: want}) {
					fail("%s %q volume lacks item %q", r.kind, r.ref.Name, want)
				}
			}
			if len(r.ref.Items) == 0 && len(items) > 0 {
				fail("%s %q: the connection wants every key, the volume projects only some", r.kind, r.ref.Name)
			}
			if r.ref.DefaultMode != nil && (mode == nil || int(*mode) != *r.ref.DefaultMode) {
				fail("%s %q: defaultMode is not %#o", r.kind, r.ref.Name, *r.ref.DefaultMode)
			}
		}
	}
	return errs
}

func checkMemory(c corev1.Container, memory string) []error {
	want := resource.MustParse(memory)
	req, lim := c.Resources.Requests[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceMemory]
	if req.Cmp(want) != 0 || lim.Cmp(want) != 0 {
		return []error{fmt.Errorf("container %q: memory request %s and limit %s, want both %s", c.Name, req.String(), lim.String(), memory)}
	}
	return nil
}

type podContainer struct {
	container corev1.Container
	init      bool
}

func allContainers(spec corev1.PodSpec) []podContainer {
	var out []podContainer
	for _, c := range spec.InitContainers {
		out = append(out, podContainer{c, true})
	}
	for _, c := range spec.Containers {
		out = append(out, podContainer{c, false})
	}
	return out
}

// isPlxfs reports whether c runs plxfs mount or plxfs init (args to the image's entrypoint).
func isPlxfs(c corev1.Container) bool {
	return len(c.Command) == 0 && len(c.Args) > 0 && (c.Args[0] == "mount" || c.Args[0] == "init")
}

// flagValue returns the value of --name in args ("--name V" or "--name=V").
func flagValue(args []string, name string) string {
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

func volume(spec corev1.PodSpec, name string) (corev1.Volume, bool) {
	for _, v := range spec.Volumes {
		if v.Name == name {
			return v, true
		}
	}
	return corev1.Volume{}, false
}

func mountAt(c corev1.Container, p string) (corev1.VolumeMount, bool) {
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == p {
			return vm, true
		}
	}
	return corev1.VolumeMount{}, false
}

func mountOf(c corev1.Container, vol string) (corev1.VolumeMount, bool) {
	for _, vm := range c.VolumeMounts {
		if vm.Name == vol {
			return vm, true
		}
	}
	return corev1.VolumeMount{}, false
}

// mountCovering returns the deepest volume mount of c that p is on or under.
func mountCovering(c corev1.Container, p string) (corev1.VolumeMount, bool) {
	var best corev1.VolumeMount
	found := false
	for _, vm := range c.VolumeMounts {
		if (p == vm.MountPath || under(p, vm.MountPath)) && len(vm.MountPath) >= len(best.MountPath) {
			best, found = vm, true
		}
	}
	return best, found
}

func under(p, dir string) bool {
	return strings.HasPrefix(path.Clean(p), strings.TrimSuffix(dir, "/")+"/")
}

func hasEnvItem(c corev1.Container, kind, name, key string) bool {
	for _, e := range c.Env {
		if e.Name != key || e.ValueFrom == nil {
			continue
		}
		if s := e.ValueFrom.SecretKeyRef; kind == "secret" && s != nil && s.Name == name && s.Key == key {
			return true
		}
		if s := e.ValueFrom.ConfigMapKeyRef; kind == "configMap" && s != nil && s.Name == name && s.Key == key {
			return true
		}
	}
	return false
}

func hasEnvFrom(c corev1.Container, kind, name string) bool {
	for _, e := range c.EnvFrom {
		if kind == "secret" && e.SecretRef != nil && e.SecretRef.Name == name ||
			kind == "configMap" && e.ConfigMapRef != nil && e.ConfigMapRef.Name == name {
			return true
		}
	}
	return false
}
