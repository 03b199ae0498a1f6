package kubernetes_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/deploy/kubernetes"
	"github.com/plxfs/plxfs/deploy/kubernetes/kubetest"
)

// mode is how a manifest runs plxfs.
type mode int

const (
	native mode = iota
	legacy
	initMode
)

// TestExampleManifests decodes every manifest in this directory strictly and checks it against
// the connections file in its own ConfigMap.
func TestExampleManifests(t *testing.T) {
	want := map[string]mode{
		"job-native-sidecar.yaml": native,
		"job-sidecar-legacy.yaml": legacy,
		"job-init.yaml":           initMode,
	}
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob("*.yml")
	files = append(files, more...)
	for _, f := range files {
		if _, ok := want[f]; !ok {
			t.Errorf("%s: a manifest this test does not know; add it to the table", f)
		}
	}
	for file, m := range want {
		t.Run(file, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := kubetest.Decode(data)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			if len(docs.Jobs) != 1 || len(docs.Specs) != 0 {
				t.Fatalf("%s: want one Job, got %d Jobs and %d bare pod specs", file, len(docs.Jobs), len(docs.Specs))
			}
			spec := docs.Jobs[0].Spec.Template.Spec
			conns, err := kubetest.Connections(docs, spec)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			secrets := map[string]bool{}
			for _, c := range conns {
				if c.Secret != nil && c.Secret.MountPath != "" {
					secrets[c.Secret.Name] = true
				}
			}
			if len(secrets) < 2 {
				t.Errorf("%s: the example should show two connections with two different mounted secrets, has %d", file, len(secrets))
			}
			for _, err := range kubetest.CheckPod(spec, conns, kubernetes.DefaultMemory) {
				t.Errorf("%s: %v", file, err)
			}
			checkMode(t, spec, m, len(conns))
			checkKeyPath(t, docs, spec)
			if spec.RestartPolicy != corev1.RestartPolicyNever && spec.RestartPolicy != corev1.RestartPolicyOnFailure {
				t.Errorf("%s: a Job's pod needs restartPolicy Never or OnFailure, has %q", file, spec.RestartPolicy)
			}
		})
	}
}

// checkMode checks that the manifest runs plxfs the way its name says.
func checkMode(t *testing.T, spec corev1.PodSpec, m mode, conns int) {
	t.Helper()
	var mountInit, mountRegular, inits int
	for _, c := range spec.InitContainers {
		switch {
		case len(c.Args) > 0 && c.Args[0] == "mount":
			mountInit++
		case len(c.Args) > 0 && c.Args[0] == "init":
			inits++
		}
	}
	for _, c := range spec.Containers {
		if len(c.Args) > 0 && c.Args[0] == "mount" {
			mountRegular++
		}
	}
	got := [3]int{mountInit, mountRegular, inits}
	wantCounts := map[mode][3]int{native: {1, 0, 0}, legacy: {0, 1, 0}, initMode: {0, 0, conns}}[m]
	if got != wantCounts {
		t.Errorf("plxfs containers (native mount, regular mount, init) = %v, want %v", got, wantCounts)
	}
}

// checkKeyPath checks that a GC_KEY_PATH a container gets through envFrom points into a secret
// that container mounts.
func checkKeyPath(t *testing.T, docs kubetest.Docs, spec corev1.PodSpec) {
	t.Helper()
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		for _, e := range c.EnvFrom {
			if e.ConfigMapRef == nil {
				continue
			}
			for _, cm := range docs.ConfigMaps {
				kp, ok := cm.Data["GC_KEY_PATH"]
				if cm.Name != e.ConfigMapRef.Name || !ok {
					continue
				}
				found := false
				for _, vm := range c.VolumeMounts {
					if strings.HasPrefix(kp, vm.MountPath+"/") && isSecret(spec, vm.Name) {
						found = true
					}
				}
				if !found {
					t.Errorf("container %q: GC_KEY_PATH=%s from ConfigMap %q is in no secret it mounts", c.Name, kp, cm.Name)
				}
			}
		}
	}
}

func isSecret(spec corev1.PodSpec, vol string) bool {
	for _, v := range spec.Volumes {
		if v.Name == vol {
			return v.Secret != nil
		}
	}
	return false
}

// TestCheckPodCatchesDrift breaks the native example in the ways that matter and expects
// CheckPod to notice each, so a passing check means something.
func TestCheckPodCatchesDrift(t *testing.T) {
	data, err := os.ReadFile("job-native-sidecar.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := kubetest.Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	base := docs.Jobs[0].Spec.Template.Spec
	conns, err := kubetest.Connections(docs, base)
	if err != nil {
		t.Fatal(err)
	}
	sidecarMount := func(s *corev1.PodSpec, path string) *corev1.VolumeMount {
		for i := range s.InitContainers[0].VolumeMounts {
			if vm := &s.InitContainers[0].VolumeMounts[i]; vm.MountPath == path {
				return vm
			}
		}
		t.Fatalf("no mount at %s", path)
		return nil
	}
	tests := []struct {
		name   string
		break_ func(s *corev1.PodSpec)
		want   string
	}{
		{"secret moved", func(s *corev1.PodSpec) { sidecarMount(s, "/etc/gcs").MountPath = "/etc/gcs2" }, `"gcs-secret" is not mounted at its mountPath /etc/gcs`},
		{"secret swapped", func(s *corev1.PodSpec) { sidecarMount(s, "/etc/gcs").Name = "secret-gcs-outputs-secret" }, "not from secret"},
		{"items dropped", func(s *corev1.PodSpec) {
			for i := range s.Volumes {
				if s.Volumes[i].Secret != nil && s.Volumes[i].Secret.SecretName == "gcs-outputs-secret" {
					s.Volumes[i].Secret.Items = []corev1.KeyToPath{{Key: "other.json", Path: "other.json"}}
				}
			}
		}, `lacks item "gc-secret.json"`},
		{"configMap env dropped", func(s *corev1.PodSpec) { s.InitContainers[0].EnvFrom = nil }, `configMap "gcs-key-path" has no mountPath and no items but is not in envFrom`},
		{"not native", func(s *corev1.PodSpec) { s.InitContainers[0].RestartPolicy = nil }, "restartPolicy: Always"},
		{"not privileged", func(s *corev1.PodSpec) { s.InitContainers[0].SecurityContext = nil }, "not privileged"},
		{"no probe", func(s *corev1.PodSpec) { s.InitContainers[0].StartupProbe = nil }, "startupProbe"},
		{"sidecar propagation", func(s *corev1.PodSpec) { sidecarMount(s, "/plx").MountPropagation = nil }, "Bidirectional"},
		{"main propagation", func(s *corev1.PodSpec) { s.Containers[0].VolumeMounts[0].MountPropagation = nil }, "HostToContainer"},
		{"memory", func(s *corev1.PodSpec) {
			s.InitContainers[0].Resources.Limits[corev1.ResourceMemory] = resource.MustParse("512Mi")
		}, "memory request"},
		{"undefined volume", func(s *corev1.PodSpec) { s.Volumes = s.Volumes[1:] }, "not defined"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := *base.DeepCopy()
			tc.break_(&spec)
			errs := kubetest.CheckPod(spec, conns, kubernetes.DefaultMemory)
			if err := errors.Join(errs...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CheckPod = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if errs := kubetest.CheckPod(base, conns, kubernetes.DefaultMemory); len(errs) != 0 {
		t.Errorf("the unbroken example fails: %v", errors.Join(errs...))
	}
}

// testConnections are two connections with two different secrets and mount paths, one of
// them with a configMap (GC_KEY_PATH), items and a defaultMode, plus a third sharing the first
// one's secret, a fourth whose secret has no mountPath (envFrom, for GC_KEYFILE_DICT) and a
// fifth whose configMap has a mountPath and whose secret gives one item as an env var.
func testConnections() []connspec.Connection {
	mode := 0o440
	return []connspec.Connection{
		{Name: "gcs-dataset1", Kind: "gcs", Bucket: "gcs-datasets", Prefix: "path1/",
			Secret:    &connspec.Ref{Name: "gcs-secret", MountPath: "/etc/gcs"},
			ConfigMap: &connspec.Ref{Name: "gcs-key-path"}},
		{Name: "outputs", Kind: "gcs", Bucket: "gcs-outputs", Description: "run outputs", Tags: []string{"out"},
			Secret: &connspec.Ref{Name: "outputs.key", MountPath: "/plx-context/.gc/gc-secret.json", Items: []string{"gc-secret.json"}, DefaultMode: &mode}},
		{Name: "gcs-dataset2", Kind: "gcs", Bucket: "gcs-datasets", Prefix: "path2/",
			Secret:    &connspec.Ref{Name: "gcs-secret", MountPath: "/etc/gcs"},
			ConfigMap: &connspec.Ref{Name: "gcs-key-path"}},
		{Name: "public", Kind: "gcs", Bucket: "gcs-public",
			Secret: &connspec.Ref{Name: "keyfile-dict"}},
		{Name: "mounted-cm", Kind: "gcs", Bucket: "gcs-other", Prefix: "a/b/",
			Secret:    &connspec.Ref{Name: "env-items", Items: []string{"GC_KEYFILE_DICT"}},
			ConfigMap: &connspec.Ref{Name: "cm-files", MountPath: "/etc/cm", Items: []string{"key.json"}}},
	}
}

// TestBuild builds each variant, writes it, decodes the output strictly and checks it against
// the connections the ConfigMap in the output holds, which must be the ones given.
func TestBuild(t *testing.T) {
	tests := []struct {
		name string
		opts kubernetes.Options
		m    mode
	}{
		{"native", kubernetes.Options{Native: true}, native},
		{"legacy", kubernetes.Options{}, legacy},
		{"init", kubernetes.Options{Init: true}, initMode},
		{"native, own paths", kubernetes.Options{Native: true, MountPath: "/data", ConfigMapName: "my-conns", Memory: "300Mi"}, native},
		{"native, read-only", kubernetes.Options{Native: true, ReadOnly: true}, native},
		{"legacy, read-only", kubernetes.Options{ReadOnly: true}, legacy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Image = "registry.example.com/plxfs:1.0"
			in := testConnections()
			pod, err := kubernetes.Build(in, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			if err := pod.WriteYAML(&out, "test connections"); err != nil {
				t.Fatal(err)
			}
			docs, err := kubetest.Decode(out.Bytes())
			if err != nil {
				t.Fatalf("%v\n%s", err, out.String())
			}
			if len(docs.ConfigMaps) != 1 || len(docs.Specs) != 1 || len(docs.Jobs) != 0 {
				t.Fatalf("want a ConfigMap and a pod spec, got %d, %d (and %d Jobs)", len(docs.ConfigMaps), len(docs.Specs), len(docs.Jobs))
			}
			if want := tc.opts.ConfigMapName; want != "" && docs.ConfigMaps[0].Name != want {
				t.Errorf("ConfigMap name %q, want %q", docs.ConfigMaps[0].Name, want)
			}
			spec := docs.Specs[0]
			conns, err := kubetest.Connections(docs, spec)
			if err != nil {
				t.Fatal(err)
			}
			checkSameConnections(t, conns, in)
			memory := tc.opts.Memory
			if memory == "" {
				memory = kubernetes.DefaultMemory
			}
			for _, err := range kubetest.CheckPod(spec, conns, memory) {
				t.Errorf("%v", err)
			}
			checkMode(t, spec, tc.m, len(in))
			sidecars := 0
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				if c.Name != kubernetes.SidecarName {
					continue
				}
				sidecars++
				if slices.Contains(c.Args, "--read-only") != tc.opts.ReadOnly {
					t.Errorf("sidecar args %q, want --read-only: %v", c.Args, tc.opts.ReadOnly)
				}
			}
			if tc.m != initMode && sidecars != 1 {
				t.Errorf("%d sidecar containers named %q", sidecars, kubernetes.SidecarName)
			}
			// One volume per distinct secret: gcs-secret is shared by two connections.
			var secretVols []string
			for _, v := range spec.Volumes {
				if v.Secret != nil {
					secretVols = append(secretVols, v.Secret.SecretName)
				}
			}
			slices.Sort(secretVols)
			if want := []string{"gcs-secret", "outputs.key"}; !slices.Equal(secretVols, want) {
				t.Errorf("secret volumes %v, want %v", secretVols, want)
			}
			// As Polyaxon: a configMap with a mountPath is mounted, not also in envFrom.
			for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
				for _, e := range c.EnvFrom {
					if e.ConfigMapRef != nil && e.ConfigMapRef.Name == "cm-files" {
						t.Errorf("container %q: configMap cm-files has a mountPath but is in envFrom", c.Name)
					}
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out.String())
			}
		})
	}
}

// checkSameConnections checks that the connections read back from the generated ConfigMap
// are the ones given.
func checkSameConnections(t *testing.T, got, want []connspec.Connection) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("ConfigMap holds %d connections, want %d", len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Name != w.Name || g.Kind != w.Kind || g.Bucket != w.Bucket || g.Prefix != w.Prefix ||
			g.Description != w.Description || !slices.Equal(g.Tags, w.Tags) ||
			!sameRef(g.Secret, w.Secret) || !sameRef(g.ConfigMap, w.ConfigMap) {
			t.Errorf("connection %d read back as %+v, want %+v", i, g, w)
		}
	}
}

func sameRef(a, b *connspec.Ref) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Name == b.Name && a.MountPath == b.MountPath && slices.Equal(a.Items, b.Items) &&
		(a.DefaultMode == nil) == (b.DefaultMode == nil) && (a.DefaultMode == nil || *a.DefaultMode == *b.DefaultMode)
}

func TestBuildErrors(t *testing.T) {
	gcs := func(name string, secret *connspec.Ref) connspec.Connection {
		return connspec.Connection{Name: name, Kind: "gcs", Bucket: "b", Secret: secret}
	}
	m1, m2 := 0o400, 0o444
	tests := []struct {
		name  string
		conns []connspec.Connection
		opts  kubernetes.Options
		want  string
	}{
		{"no connections", nil, kubernetes.Options{}, "no connections"},
		{"no image", []connspec.Connection{gcs("a", nil)}, kubernetes.Options{Image: ""}, "no image"},
		{"relative mount path", []connspec.Connection{gcs("a", nil)}, kubernetes.Options{MountPath: "plx"}, `mount path "plx"`},
		{"bad memory", []connspec.Connection{gcs("a", nil)}, kubernetes.Options{Memory: "lots"}, `memory "lots"`},
		{"not gcs", []connspec.Connection{{Name: "s3data", Kind: "s3", Bucket: "b"}}, kubernetes.Options{}, `connection "s3data": kind "s3"`},
		{"two secrets, one path", []connspec.Connection{
			gcs("a", &connspec.Ref{Name: "s1", MountPath: "/etc/gcs"}),
			gcs("b", &connspec.Ref{Name: "s2", MountPath: "/etc/gcs"}),
		}, kubernetes.Options{}, `connection "b": secret.mountPath "/etc/gcs" is also the mountPath of secret s1`},
		{"secret under the mount", []connspec.Connection{gcs("a", &connspec.Ref{Name: "s1", MountPath: "/plx/keys"})}, kubernetes.Options{}, `connection "a": secret.mountPath "/plx/keys" is on or under /plx`},
		{"secret on the config dir", []connspec.Connection{gcs("a", &connspec.Ref{Name: "s1", MountPath: "/etc/plxfs"})}, kubernetes.Options{Init: true}, "/etc/plxfs"},
		{"relative secret path", []connspec.Connection{gcs("a", &connspec.Ref{Name: "s1", MountPath: "etc/gcs"})}, kubernetes.Options{}, `connection "a": secret.mountPath "etc/gcs"`},
		{"empty secret name", []connspec.Connection{gcs("a", &connspec.Ref{MountPath: "/etc/gcs"})}, kubernetes.Options{}, `connection "a": secret.name is empty`},
		{"defaultMode disagrees", []connspec.Connection{
			gcs("a", &connspec.Ref{Name: "s1", MountPath: "/etc/gcs", DefaultMode: &m1}),
			gcs("b", &connspec.Ref{Name: "s1", MountPath: "/etc/gcs2", DefaultMode: &m2}),
		}, kubernetes.Options{}, `connection "b": secret "s1" has defaultMode 0444, but connection "a" gives it 0400`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.opts.Image == "" && tc.name != "no image" {
				tc.opts.Image = "plxfs:test"
			}
			_, err := kubernetes.Build(tc.conns, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestBuildLeavesOutSecrets checks that schema keys and env entries, which may hold key
// material, stay out of the ConfigMap and that the warning names them without their values.
func TestBuildLeavesOutSecrets(t *testing.T) {
	const secret = "-----BEGIN PRIVATE KEY-----xyz"
	conns := []connspec.Connection{{
		Name: "a", Kind: "gcs", Bucket: "b",
		Schema: map[string]string{"keyfile_dict": secret},
		Env:    []connspec.EnvVar{{Name: "GC_KEYFILE_DICT", Value: secret}},
	}}
	pod, err := kubernetes.Build(conns, kubernetes.Options{Image: "plxfs:test", Native: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := pod.WriteYAML(&out, "a"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "PRIVATE KEY") || strings.Contains(out.String(), "keyfile_dict") {
		t.Errorf("output carries schema or env values:\n%s", out.String())
	}
	w := strings.Join(pod.Warnings, "\n")
	if !strings.Contains(w, "schema.keyfile_dict") || !strings.Contains(w, "env GC_KEYFILE_DICT") || strings.Contains(w, "PRIVATE") {
		t.Errorf("warnings = %q: want the keys named, without values", w)
	}
}

// TestBuildOddNames checks that names which are not DNS labels still give valid, distinct
// volume and container names.
func TestBuildOddNames(t *testing.T) {
	long := strings.Repeat("x", 70)
	conns := []connspec.Connection{
		{Name: "Data_Set.1", Kind: "gcs", Bucket: "b", Secret: &connspec.Ref{Name: "key.one", MountPath: "/k/1"}},
		{Name: long, Kind: "gcs", Bucket: "b", Secret: &connspec.Ref{Name: "key-one", MountPath: "/k/2"}},
		{Name: long + "y", Kind: "gcs", Bucket: "b", Secret: &connspec.Ref{Name: long + ".z", MountPath: "/k/3"}},
	}
	for _, opts := range []kubernetes.Options{{Native: true}, {Init: true}} {
		opts.Image = "plxfs:test"
		pod, err := kubernetes.Build(conns, opts)
		if err != nil {
			t.Fatal(err)
		}
		// CheckPod validates names as DNS-1123 labels and rejects duplicates.
		for _, err := range kubetest.CheckPod(pod.Spec, conns, kubernetes.DefaultMemory) {
			t.Errorf("init=%v: %v", opts.Init, err)
		}
		if opts.Init {
			seen := map[string]bool{}
			for _, c := range pod.Spec.InitContainers {
				if seen[c.Name] {
					t.Errorf("container name %q twice", c.Name)
				}
				seen[c.Name] = true
			}
		}
	}
}

// TestDecodeStrict checks that Decode rejects what kubectl would silently drop or misread.
func TestDecodeStrict(t *testing.T) {
	job := func(mount string) string {
		return "apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}\nspec:\n  template:\n    spec:\n      containers:\n      - name: main\n        volumeMounts:\n        - " + mount + "\n"
	}
	tests := []struct {
		name, doc, want string
	}{
		{"good", job("{name: plx, mountPath: /plx, mountPropagation: HostToContainer}"), ""},
		{"unknown field", job("{name: plx, mountPath: /plx, mountPropogation: HostToContainer}"), "mountPropogation"},
		{"duplicate field", job("{name: plx, mountPath: /plx, mountPath: /other}"), "mountPath"},
		{"unknown kind", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n", `kind "Secret"`},
		{"bare pod spec", "containers: [{name: main}]\nvolumes: [{name: plx, emptyDir: {}}]\n", ""},
		{"bare pod spec, unknown field", "containers: [{name: main}]\nvolumez: []\n", "volumez"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := kubetest.Decode([]byte("# comment only\n---\n" + tc.doc))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Decode: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("Decode = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
