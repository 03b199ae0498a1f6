package fs

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSemantics_ToolsKeepMetadata: tar -cpf/-xpf, rsync -a and cp -a through the mount keep
// modes, owners and modification times of files, directories and symlinks, as read after a
// remount; a second rsync -a then finds nothing to do.
func TestSemantics_ToolsKeepMetadata(t *testing.T) {
	for _, tool := range []string{"tar", "rsync", "cp"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is required by this test (apt-get install %s): %v", tool, tool, err)
		}
	}
	src := filepath.Join(t.TempDir(), "src")
	base := time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	type entry struct {
		name     string
		mode     os.FileMode // 0 for a symlink
		uid, gid int
	}
	tree := []entry{
		{"a.txt", 0o644, 0, 0}, {"secret", 0o600, 1234, 5678}, {"run.sh", 0o755, 0, 0},
		{"d1", os.ModeDir | 0o750, 0, 0}, {"d1/b", 0o640, 1234, 0}, {"d1/d2", os.ModeDir | 0o700, 1234, 5678},
		{"d1/d2/c", 0o444, 0, 0}, {"link", 0, 0, 0}, {"empty", os.ModeDir | 0o755, 0, 0},
	}
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, e := range tree {
		p := filepath.Join(src, e.name)
		var err error
		switch {
		case e.mode == 0:
			err = os.Symlink("a.txt", p)
		case e.mode.IsDir():
			err = os.Mkdir(p, e.mode.Perm())
		default:
			err = os.WriteFile(p, []byte(strings.Repeat(e.name, i+1)), e.mode.Perm())
		}
		if err == nil && e.mode != 0 {
			err = os.Chmod(p, e.mode.Perm())
		}
		if err == nil {
			err = os.Lchown(p, e.uid, e.gid)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	// Times last, deepest first, so that creating children does not move them.
	for i := len(tree) - 1; i >= 0; i-- {
		p := filepath.Join(src, tree[i].name)
		when := base.Add(time.Duration(i)*time.Hour + time.Duration(i)*1234567*time.Nanosecond)
		if err := lutimes(p, when); err != nil {
			t.Fatal(err)
		}
	}
	if err := lutimes(src, base.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}

	e := newEnv(t, envOptions{})
	dst := func(name string) string { return e.path("c", name) }
	archive := filepath.Join(t.TempDir(), "src.tar")
	runTool(t, "tar", "--format=posix", "-C", src, "-cpf", archive, ".")
	if err := os.Mkdir(dst("tarx"), 0o755); err != nil {
		t.Fatal(err)
	}
	runTool(t, "tar", "-C", dst("tarx"), "-xpf", archive)
	runTool(t, "rsync", "-a", src+"/", dst("rs")+"/")
	runTool(t, "cp", "-a", src, dst("cpa"))

	e.remount()
	for _, copyName := range []string{"tarx", "rs", "cpa"} {
		compareMeta(t, copyName, src, dst(copyName))
	}
	if out := runTool(t, "rsync", "-a", "--itemize-changes", src+"/", dst("rs")+"/"); strings.TrimSpace(out) != "" {
		t.Errorf("second rsync -a after a remount changed something:\n%s", out)
	}
}

// lutimes sets the access and modification times of p, not following a symlink.
func lutimes(p string, when time.Time) error { return utimes(p, ts(when), ts(when)) }

// runTool runs a command (never with its working directory on the mount) and returns its output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// compareMeta checks that every entry of the tree at src has the same type, mode, owner and
// mtime (to the nanosecond) at dst.
func compareMeta(t *testing.T, what, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want, err := lstat(p)
		if err != nil {
			return err
		}
		got, err := lstat(filepath.Join(dst, rel))
		if err != nil {
			t.Errorf("%s: %s: %v", what, rel, err)
			return nil
		}
		if got.Mode != want.Mode || got.Uid != want.Uid || got.Gid != want.Gid || got.Mtim != want.Mtim {
			t.Errorf("%s: %s: mode %o owner %d:%d mtime %v, want %o %d:%d %v", what, rel,
				got.Mode, got.Uid, got.Gid, fmtTs(tsTime(got.Mtim)), want.Mode, want.Uid, want.Gid, fmtTs(tsTime(want.Mtim)))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: walk: %v", what, err)
	}
}

func fmtTs(t time.Time) string { return fmt.Sprint(t.UTC().Format(time.RFC3339Nano)) }
