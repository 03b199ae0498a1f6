package main

import (
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/deploy/kubernetes"
	"github.com/plxfs/plxfs/deploy/kubernetes/kubetest"
)

// kubeConnections has two gcs connections with two different secrets and mount paths (one with
// items and a defaultMode), a configMap for GC_KEY_PATH, and an s3 connection to be ignored.
const kubeConnections = `connections:
- name: gcs-dataset1
  kind: gcs
  schema:
    bucket: "gs://gcs-datasets/path1"
  secret:
    name: gcs-secret
    mountPath: /etc/gcs
  configMap:
    name: gcs-key-path
- name: gcs-outputs
  kind: gcs
  schema:
    bucket: "gs://gcs-outputs/runs/"
  secret:
    name: gcs-outputs-secret
    mountPath: /plx-context/.gc/gc-secret.json
    items: [gc-secret.json]
    defaultMode: 0440
- name: s3-dataset1
  kind: s3
  schema:
    bucket: "s3://s3-datasets"
`

func writeKubeConnections(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "connections.yaml")
	if err := os.WriteFile(file, []byte(kubeConnections), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestKubeSidecar runs `plxfs kube sidecar` on a connections file, decodes its output strictly
// into the Kubernetes types and checks that each connection's secret is mounted where its spec
// says, against the connections read back from the ConfigMap it printed.
func TestKubeSidecar(t *testing.T) {
	file := writeKubeConnections(t)
	cat, err := connspec.ParseYAML(file, []byte(kubeConnections))
	if err != nil {
		t.Fatal(err)
	}
	all, err := cat.Select(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		want  []connspec.Connection
		check func(t *testing.T, spec corev1.PodSpec)
	}{
		{"native", nil, all, func(t *testing.T, spec corev1.PodSpec) {
			if len(spec.InitContainers) != 1 || spec.InitContainers[0].RestartPolicy == nil || *spec.InitContainers[0].RestartPolicy != corev1.ContainerRestartPolicyAlways {
				t.Errorf("want one init container with restartPolicy Always, got %+v", spec.InitContainers)
			}
		}},
		{"regular sidecar", []string{"--native=false"}, all, func(t *testing.T, spec corev1.PodSpec) {
			if len(spec.InitContainers) != 0 || len(spec.Containers) != 2 || !slices.Contains(spec.Containers[0].Args, kubernetes.DoneFile) {
				t.Errorf("want a plxfs container with --exit-on-file %s beside main, got %+v", kubernetes.DoneFile, spec.Containers)
			}
		}},
		{"init", []string{"--init", "--mount-path", "/data"}, all, func(t *testing.T, spec corev1.PodSpec) {
			if len(spec.InitContainers) != 2 || !slices.Contains(spec.InitContainers[1].Args, "/data/gcs-outputs") {
				t.Errorf("want two plxfs init containers copying into /data/NAME, got %+v", spec.InitContainers)
			}
			if spec.TerminationGracePeriodSeconds != nil {
				t.Errorf("init containers upload nothing at exit, yet terminationGracePeriodSeconds is %d", *spec.TerminationGracePeriodSeconds)
			}
		}},
		{"grace period", []string{"--grace-period", "5m"}, all, func(t *testing.T, spec corev1.PodSpec) {
			checkGrace(t, spec, spec.InitContainers[0], "5m0s", 320)
		}},
		{"default grace period", []string{"--native=false"}, all, func(t *testing.T, spec corev1.PodSpec) {
			checkGrace(t, spec, spec.Containers[0], kubernetes.DefaultGrace.String(), 120)
		}},
		{"cache size", []string{"--cache-size", "20GiB"}, all, func(t *testing.T, spec corev1.PodSpec) {
			args := spec.InitContainers[0].Args
			if i := slices.Index(args, "--cache-size"); i < 0 || args[i+1] != "20GiB" {
				t.Errorf("mount args %q: want --cache-size 20GiB", args)
			}
		}},
		{"one connection", []string{"--connections", "gcs-outputs", "--config-map-name", "outputs-conn", "--memory", "300Mi"}, all[1:], func(t *testing.T, spec corev1.PodSpec) {
			for _, v := range spec.Volumes {
				if v.Secret != nil && v.Secret.SecretName != "gcs-outputs-secret" {
					t.Errorf("volume %q brings secret %q, which no selected connection uses", v.Name, v.Secret.SecretName)
				}
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"kube", "sidecar", "--config", file, "--image", "registry.example.com/plxfs:1"}, tc.args...)
			code, out, errOut := runCLI(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			docs, err := kubetest.Decode([]byte(out))
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			if len(docs.ConfigMaps) != 1 || len(docs.Specs) != 1 {
				t.Fatalf("want a ConfigMap and a pod spec, got %d and %d:\n%s", len(docs.ConfigMaps), len(docs.Specs), out)
			}
			spec := docs.Specs[0]
			conns, err := kubetest.Connections(docs, spec)
			if err != nil {
				t.Fatal(err)
			}
			if len(conns) != len(tc.want) {
				t.Fatalf("ConfigMap holds %d connections, want %d", len(conns), len(tc.want))
			}
			for i, w := range tc.want {
				g := conns[i]
				if g.Name != w.Name || g.Bucket != w.Bucket || g.Prefix != w.Prefix || modeOf(g.Secret) != modeOf(w.Secret) ||
					g.Secret.Name != w.Secret.Name || g.Secret.MountPath != w.Secret.MountPath || !slices.Equal(g.Secret.Items, w.Secret.Items) {
					t.Errorf("connection %d read back as %+v, want %+v", i, g, w)
				}
			}
			memory := kubernetes.DefaultMemory
			if i := slices.Index(tc.args, "--memory"); i >= 0 {
				memory = tc.args[i+1]
			}
			for _, err := range kubetest.CheckPod(spec, conns, memory) {
				t.Error(err)
			}
			tc.check(t, spec)
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

func modeOf(r *connspec.Ref) int {
	if r.DefaultMode == nil {
		return -1
	}
	return *r.DefaultMode
}

func TestKubeSidecarErrors(t *testing.T) {
	file := writeKubeConnections(t)
	clash := filepath.Join(t.TempDir(), "clash.yaml")
	err := os.WriteFile(clash, []byte(strings.Replace(kubeConnections, "mountPath: /plx-context/.gc/gc-secret.json", "mountPath: /etc/gcs", 1)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no image", []string{"--config", file}, 2, "needs --image"},
		{"argument", []string{"--config", file, "--image", "i", "extra"}, 2, "takes no arguments"},
		{"two secrets, one path", []string{"--config", clash, "--image", "i"}, 1, `connection "gcs-outputs": secret.mountPath "/etc/gcs" is also the mountPath of secret gcs-secret`},
		{"selected s3", []string{"--config", file, "--image", "i", "--connections", "s3-dataset1"}, 2, "s3-dataset1"},
		{"grace period below 1s", []string{"--config", file, "--image", "i", "--grace-period", "0s"}, 2, "--grace-period 0s"},
		{"bad memory", []string{"--config", file, "--image", "i", "--memory", "lots"}, 1, `memory "lots"`},
		{"bad cache size", []string{"--config", file, "--image", "i", "--cache-size", "huge"}, 2, `--cache-size "huge"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"kube", "sidecar"}, tc.args...)...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
			if out != "" {
				t.Errorf("printed a partial manifest on error:\n%s", out)
			}
		})
	}
}

// TestManifestArgs parses the plxfs command lines of the example manifests and of `plxfs kube
// sidecar`'s output (startup probes included) with the real commands' flags, so that a renamed
// or retyped flag breaks here rather than in a cluster.
func TestManifestArgs(t *testing.T) {
	file := writeKubeConnections(t)
	for _, variant := range [][]string{nil, {"--native=false"}, {"--init"}} {
		t.Run("kube sidecar "+strings.Join(variant, " "), func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"kube", "sidecar", "--config", file, "--image", "i"}, variant...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			docs, err := kubetest.Decode([]byte(out))
			if err != nil || len(docs.Specs) != 1 {
				t.Fatalf("%v, %d specs", err, len(docs.Specs))
			}
			checkPlxfsArgs(t, docs.Specs[0])
		})
	}
	files, err := filepath.Glob("../../deploy/kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			docs, err := kubetest.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			for _, job := range docs.Jobs {
				checkPlxfsArgs(t, job.Spec.Template.Spec)
			}
		})
	}
}

// checkPlxfsArgs parses every plxfs command line in spec with the flags of the command it names.
func checkPlxfsArgs(t *testing.T, spec corev1.PodSpec) {
	t.Helper()
	for _, c := range append(slices.Clone(spec.InitContainers), spec.Containers...) {
		if len(c.Command) == 0 && len(c.Args) > 0 && (c.Args[0] == "mount" || c.Args[0] == "init") {
			parsePlxfsArgs(t, c.Name, c.Args)
		}
		if p := c.StartupProbe; p != nil && p.Exec != nil && len(p.Exec.Command) > 1 && p.Exec.Command[0] == "plxfs" {
			parsePlxfsArgs(t, c.Name+" startupProbe", p.Exec.Command[1:])
		}
	}
}

// positionals is how many arguments each command takes after its flags.
var positionals = map[string]int{"mount": 1, "wait": 1, "init": 0}

func parsePlxfsArgs(t *testing.T, where string, args []string) {
	t.Helper()
	cmd := slices.IndexFunc(newApp().Commands, func(c *cli.Command) bool { return c.Name == args[0] })
	if cmd < 0 {
		t.Errorf("%s runs `plxfs %s`, which is not a plxfs command", where, args[0])
		return
	}
	fs := flag.NewFlagSet(args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, f := range newApp().Commands[cmd].Flags {
		if err := f.Apply(fs); err != nil {
			t.Fatalf("flag %v: %v", f.Names(), err)
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		t.Errorf("%s: plxfs %s: %v", where, strings.Join(args, " "), err)
		return
	}
	if n, ok := positionals[args[0]]; ok && fs.NArg() != n {
		t.Errorf("%s: plxfs %s: %d arguments after the flags, want %d", where, strings.Join(args, " "), fs.NArg(), n)
	}
}

// checkGrace checks that the mount gets --grace-period grace and the pod
// terminationGracePeriodSeconds seconds, which leaves it the time to use it.
func checkGrace(t *testing.T, spec corev1.PodSpec, mount corev1.Container, grace string, seconds int64) {
	t.Helper()
	if i := slices.Index(mount.Args, "--grace-period"); i < 0 || mount.Args[i+1] != grace {
		t.Errorf("mount args %q: want --grace-period %s", mount.Args, grace)
	}
	if g := spec.TerminationGracePeriodSeconds; g == nil || *g != seconds {
		t.Errorf("terminationGracePeriodSeconds %v, want %d (the grace period and a margin to unmount)", g, seconds)
	}
}

// TestKubeCSINamespaces: the driver's pods read the connections' secrets and configMaps from
// the driver's namespace; Polyaxon keeps them in its own. When the two differ, the output
// starts with a copy command for each (and a warning says so); when they are the same there
// is nothing to copy.
func TestKubeCSINamespaces(t *testing.T) {
	file := writeKubeConnections(t)
	refs := []string{"secret gcs-secret", "configmap gcs-key-path", "secret gcs-outputs-secret"}
	for _, tc := range []struct {
		name      string
		args      []string
		namespace string
		copyFrom  string // "": no copies
	}{
		{"defaults: kube-system, secrets in polyaxon", nil, "kube-system", "polyaxon"},
		{"driver in polyaxon", []string{"--namespace", "polyaxon"}, "polyaxon", ""},
		{"secrets already in kube-system", []string{"--secrets-namespace", "kube-system"}, "kube-system", ""},
		{"elsewhere", []string{"--namespace", "storage", "--secrets-namespace", "ml"}, "storage", "ml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, append([]string{"kube", "csi", "--config", file, "--image", "plxfs:1"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			var ds appsv1.DaemonSet
			for _, doc := range strings.Split(out, "\n---\n") {
				if strings.Contains(doc, "\nkind: DaemonSet\n") {
					if err := yaml.UnmarshalStrict([]byte(doc), &ds); err != nil {
						t.Fatal(err)
					}
				}
			}
			if ds.Namespace != tc.namespace {
				t.Errorf("DaemonSet in namespace %q, want %q", ds.Namespace, tc.namespace)
			}
			header, _, _ := strings.Cut(out, "\napiVersion:")
			for _, ref := range refs {
				kind, name, _ := strings.Cut(ref, " ")
				cmd := "kubectl get " + kind + " " + name + " -n " + tc.copyFrom + " -o yaml | "
				switch {
				case tc.copyFrom == "" && strings.Contains(out, "kubectl get"):
					t.Errorf("copy commands printed with secrets in the driver's namespace:\n%s", header)
				case tc.copyFrom != "" && (!strings.Contains(header, "#   "+cmd) || !strings.Contains(header, "kubectl apply -n "+tc.namespace+" -f -")):
					t.Errorf("the output's header lacks the copy of %s from %s to %s:\n%s", ref, tc.copyFrom, tc.namespace, header)
				case tc.copyFrom != "" && !strings.Contains(errOut, ref):
					t.Errorf("the warning does not name %s:\n%s", ref, errOut)
				}
			}
		})
	}
}
