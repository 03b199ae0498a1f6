package connspec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// examplesDir holds the examples of Polyaxon's public documentation of GCS connections
// ("Data on GCS"), written as users write them: connections and persistence lists
// (connection-*.yaml, persistence-*.yaml) and run: sections of polyaxonfiles (run-*.yaml).
var examplesDir = filepath.Join("testdata", "polyaxon")

// TestPolyaxonDocExamples parses every example: catalogs with ParseYAML, run: sections with
// ParsePolyaxonfile.
func TestPolyaxonDocExamples(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(examplesDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var catalogs, polyaxonfiles int
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(path)
		switch {
		case strings.HasPrefix(name, "connection-") || strings.HasPrefix(name, "persistence-"):
			catalogs++
			t.Run(name, func(t *testing.T) {
				cat, err := ParseYAML(name, data)
				if err != nil {
					t.Fatal(err)
				}
				conns, err := cat.Select(nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(conns) == 0 {
					t.Fatal("no connection read")
				}
				for _, c := range conns {
					if c.Name == "" || c.Bucket != "gcs-datasets" || c.Secret == nil || c.Secret.Name != "gcs-secret" || c.Secret.MountPath == "" {
						t.Errorf("connection parsed as %+v", c)
					}
					if c.Prefix != "" && c.Prefix != "path1/" && c.Prefix != "path2/" {
						t.Errorf("%s: prefix %q", c.Name, c.Prefix)
					}
				}
			})
		case strings.HasPrefix(name, "run-"):
			polyaxonfiles++
			t.Run(name, func(t *testing.T) {
				pf, err := ParsePolyaxonfile(name, data)
				if err != nil {
					t.Fatal(err)
				}
				if len(pf.Connections) == 0 && len(pf.Init) == 0 {
					t.Errorf("nothing read from %q", data)
				}
				for _, in := range pf.Init {
					if in.Connection != "gcs-dataset1" || len(in.Dirs) == 0 || len(in.Files) == 0 {
						t.Errorf("init entry parsed as %+v", in)
					}
				}
			})
		default:
			t.Errorf("%s: neither a connections nor a run example (name it connection-*, persistence-* or run-*)", path)
		}
	}
	// The documentation has three connection examples and three run examples.
	if catalogs < 3 || polyaxonfiles < 3 {
		t.Errorf("found %d connection examples and %d run examples in %s; want at least 3 of each", catalogs, polyaxonfiles, examplesDir)
	}
}
