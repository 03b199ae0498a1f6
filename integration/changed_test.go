package integration

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
)

// TestCLIChangesShowInMountAtOnce: plxfs upload and rm on the same host tell a running mount
// of the bucket (through its status socket) what they changed, so the mount shows it at once,
// although it caches names, attributes, absences and listings for --ttl 10m. A change made
// another way (straight to the bucket) still waits for the TTL: that is what shows the
// caching is on.
func TestCLIChangesShowInMountAtOnce(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"bkt"}})
	if err := srv.PutObject("bkt", "pre/old.txt", []byte("v1"), ""); err != nil {
		t.Fatal(err)
	}
	conf := mountConf(t, map[string]string{"ds": "gs://bkt/pre"})
	common := []string{"--config", conf, "--endpoint", srv.URL()}
	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, srv, conf, mnt, t.TempDir(), "--ttl", "10m")
	ds := filepath.Join(mnt, "ds")

	// What the mount learns, and keeps for the TTL.
	mustAbsent(t, filepath.Join(ds, "new.txt"))
	mustAbsent(t, filepath.Join(ds, "direct.txt"))
	mustAbsent(t, filepath.Join(ds, "sub"))
	mustReadText(t, filepath.Join(ds, "old.txt"), "v1")
	mustList(t, ds, "old.txt")

	if err := srv.PutObject("bkt", "pre/direct.txt", []byte("d"), ""); err != nil {
		t.Fatal(err)
	}
	mustAbsent(t, filepath.Join(ds, "direct.txt")) // cached absence: no daemon was told

	local := t.TempDir()
	newFile := filepath.Join(local, "new.txt")
	os.WriteFile(newFile, []byte("new content"), 0o644)
	mustCode(t, "upload new.txt", plx(t, common, "upload", newFile, "ds:"), 0)
	mustReadText(t, filepath.Join(ds, "new.txt"), "new content")

	oldFile := filepath.Join(t.TempDir(), "old.txt")
	os.WriteFile(oldFile, []byte("version two, longer"), 0o644)
	mustCode(t, "upload -f old.txt as gs://", plx(t, common, "upload", "-f", oldFile, "gs://bkt/pre/"), 0)
	mustReadText(t, filepath.Join(ds, "old.txt"), "version two, longer")

	tree := filepath.Join(local, "sub")
	os.MkdirAll(filepath.Join(tree, "deep"), 0o755)
	os.WriteFile(filepath.Join(tree, "deep", "a.txt"), []byte("a"), 0o644)
	mustCode(t, "upload -r sub", plx(t, common, "upload", "-r", tree, "ds:"), 0)
	mustReadText(t, filepath.Join(ds, "sub", "deep", "a.txt"), "a")
	mustList(t, ds, "new.txt", "old.txt", "sub")

	mustCode(t, "rm new.txt", plx(t, common, "rm", "ds:new.txt"), 0)
	mustAbsent(t, filepath.Join(ds, "new.txt"))
	mustCode(t, "rm -r sub", plx(t, common, "rm", "-r", "-f", "ds:sub"), 0)
	mustAbsent(t, filepath.Join(ds, "sub", "deep", "a.txt"))
	mustAbsent(t, filepath.Join(ds, "sub"))
	mustList(t, ds, "old.txt")
}

func mustAbsent(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat %s: %v, want ENOENT", p, err)
	}
}

func mustReadText(t *testing.T, p, want string) {
	t.Helper()
	if got := mustRead(t, p); string(got) != want {
		t.Fatalf("read %s: %q, want %q", p, got, want)
	}
}

// mustList checks a directory's names (direct.txt, made behind the mount's back, is left out).
func mustList(t *testing.T, dir string, want ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != "direct.txt" {
			names = append(names, e.Name())
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("ls %s = %v, want %v", dir, names, want)
	}
}
