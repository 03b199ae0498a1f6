package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
)

func TestInit(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"data"}})
	objects := map[string]string{
		"ds/train/a.txt":     "a",
		"ds/train/sub/b.txt": "bb",
		"ds/val/c.txt":       "ccc",
		"ds/labels.csv":      "x,y\n",
		"ds/train2/no.txt":   "must not be copied with train",
		"other/secret.txt":   "outside the connection",
	}
	for name, data := range objects {
		if err := srv.PutObject("data", name, []byte(data), ""); err != nil {
			t.Fatal(err)
		}
	}
	conf := writeFile(t, "conns.yaml", "connections:\n- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://data/ds\"}\n")
	base := []string{"--config", conf, "--endpoint", srv.URL()}
	ctxRoot := t.TempDir()
	env := []string{"POLYAXON_CONTEXT_ROOT=" + ctxRoot}
	init := func(args ...string) result {
		return runPlxfs(t, env, append(append([]string{"init"}, base...), args...)...)
	}
	want := func(t *testing.T, root string, files map[string]string) {
		t.Helper()
		got := map[string]string{}
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				data, _ := os.ReadFile(p)
				rel, _ := filepath.Rel(root, p)
				got[rel] = string(data)
			}
			return nil
		})
		if len(got) != len(files) {
			t.Errorf("%s holds %v, want %v", root, got, files)
		}
		for k, v := range files {
			if got[k] != v {
				t.Errorf("%s/%s = %q, want %q", root, k, got[k], v)
			}
		}
	}

	t.Run("dirs and files into the default destination", func(t *testing.T) {
		res := init("--connection", "ds", "--dirs", "train", "--files", "/labels.csv")
		if res.Code != 0 {
			t.Fatalf("exit %d: %s", res.Code, res.Stderr)
		}
		want(t, filepath.Join(ctxRoot, "artifacts", "ds"), map[string]string{
			"train/a.txt": "a", "train/sub/b.txt": "bb", "labels.csv": "x,y\n",
		})
		// Re-running skips what is complete.
		res = init("--connection", "ds", "--dirs", "train", "--files", "/labels.csv")
		if res.Code != 0 || !strings.Contains(res.Stderr, "3 skipped") {
			t.Errorf("re-run: exit %d, stderr %q: want 3 skipped", res.Code, res.Stderr)
		}
	})
	t.Run("pairs and --path", func(t *testing.T) {
		dest := t.TempDir()
		res := init("--connection", "ds", "--dirs", "val:validation", "--files", "labels.csv:meta/l.csv", "--path", dest)
		if res.Code != 0 {
			t.Fatalf("exit %d: %s", res.Code, res.Stderr)
		}
		want(t, dest, map[string]string{"validation/c.txt": "ccc", "meta/l.csv": "x,y\n"})
	})
	t.Run("whole connection", func(t *testing.T) {
		dest := t.TempDir()
		if res := init("--connection", "ds", "--path", dest); res.Code != 0 {
			t.Fatalf("exit %d: %s", res.Code, res.Stderr)
		}
		want(t, dest, map[string]string{
			"train/a.txt": "a", "train/sub/b.txt": "bb", "val/c.txt": "ccc", "labels.csv": "x,y\n",
			"train2/no.txt": "must not be copied with train",
		})
	})
	t.Run("a pair cannot escape the destination", func(t *testing.T) {
		dest := filepath.Join(t.TempDir(), "d")
		res := init("--connection", "ds", "--files", "labels.csv:../../escaped.csv", "--path", dest)
		if _, err := os.Stat(filepath.Join(filepath.Dir(dest), "escaped.csv")); err == nil {
			t.Fatalf("a file was written outside the destination")
		}
		if res.Code != 0 {
			// refused is fine; landing inside dest is fine too
			return
		}
		want(t, dest, map[string]string{"escaped.csv": "x,y\n"})
	})
	t.Run("missing object fails, --ignore-errors warns", func(t *testing.T) {
		dest := t.TempDir()
		res := init("--connection", "ds", "--files", "nope.csv", "--path", dest)
		if res.Code != 1 || !strings.Contains(res.Stderr, "nope.csv") {
			t.Errorf("exit %d, stderr %q: want 1 naming the object", res.Code, res.Stderr)
		}
		res = init("--connection", "ds", "--files", "nope.csv,labels.csv", "--path", dest, "--ignore-errors")
		if res.Code != 0 || !strings.Contains(res.Stderr, "ignored") {
			t.Errorf("exit %d, stderr %q: want 0 and a warning", res.Code, res.Stderr)
		}
		want(t, dest, map[string]string{"labels.csv": "x,y\n"})
	})
	t.Run("polyaxonfile", func(t *testing.T) {
		dest := t.TempDir()
		pf := writeFile(t, "polyaxonfile.yaml", `
version: 1.1
kind: component
run:
  kind: job
  connections: [ds]
  init:
  - artifacts: {dirs: [train], files: [[labels.csv, l.csv]]}
    connection: ds
    path: `+dest+`
  - artifacts: [dirs: [val]]
    connection: ds
    path: `+dest+`/second
  container: {image: python}
`)
		res := runPlxfs(t, env, append([]string{"init", "--polyaxonfile", pf}, base...)...)
		if res.Code != 0 {
			t.Fatalf("exit %d: %s", res.Code, res.Stderr)
		}
		want(t, dest, map[string]string{
			"train/a.txt": "a", "train/sub/b.txt": "bb", "l.csv": "x,y\n", "second/val/c.txt": "ccc",
		})
	})
}
