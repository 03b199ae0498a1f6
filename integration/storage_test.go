package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

const storageBucket = "plx-data"

// storageSetup starts an emulator with storageBucket and writes a connections file with "ds"
// on gs://plx-data/pre. It returns the emulator and the common flags for the binary.
func storageSetup(t *testing.T, opts emulator.Options) (*emulator.Server, []string) {
	t.Helper()
	opts.Buckets = []string{storageBucket}
	srv := startEmulator(t, opts)
	conf := writeFile(t, "conns.yaml", "connections:\n- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://"+storageBucket+"/pre\"}\n")
	return srv, []string{"--config", conf, "--endpoint", srv.URL()}
}

// plx runs a storage command with the common flags after the command name.
func plx(t *testing.T, common []string, cmd string, args ...string) result {
	t.Helper()
	return runPlxfs(t, nil, append(append([]string{cmd}, common...), args...)...)
}

func mustCode(t *testing.T, what string, res result, code int) {
	t.Helper()
	if res.Code != code {
		t.Fatalf("%s: exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", what, res.Code, code, res.Stdout, res.Stderr)
	}
}

// fillRandom writes n reproducible pseudo-random bytes to path.
func fillRandom(t *testing.T, path string, seed uint64, n int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, ^seed))
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		for i := 0; i < int(k); i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < int(k); j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.Write(buf[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
}

// treeHashes maps every regular file under root (relative slash path) to its SHA-256.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(h.Sum(nil))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// TestStorageRoundTrip uploads a tree of 1,000 files (empty files, nested directories, unicode
// names, one 200 MiB file), lists it, downloads it, and compares the SHA-256 of every file.
func TestStorageRoundTrip(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{Backend: "filesystem"})
	src := filepath.Join(t.TempDir(), "run1")
	names := []string{"big/model-200MiB.bin", "données/été-ü.txt", "日本語/ファイル.bin", "emoji-🚀.txt", "space name.txt", "a/b/c/d/e/deep.txt"}
	for i := range 10 {
		names = append(names, fmt.Sprintf("empty/e%d", i))
	}
	for i := 0; len(names) < 1000; i++ {
		names = append(names, fmt.Sprintf("d%d/s%d/f%04d.dat", i%7, i%13, i))
	}
	for i, n := range names {
		size := int64(i*37%(64<<10) + 1)
		switch {
		case strings.HasPrefix(n, "big/"):
			size = 200 << 20
		case strings.HasPrefix(n, "empty/"):
			size = 0
		}
		fillRandom(t, filepath.Join(src, filepath.FromSlash(n)), uint64(i), size)
	}
	want := treeHashes(t, src)
	if len(want) != 1000 {
		t.Fatalf("made %d files", len(want))
	}

	res := plx(t, common, "upload", "-r", src, "ds:exp")
	mustCode(t, "upload -r", res, 0)
	if !strings.Contains(res.Stderr, "uploaded 1000 files, 217.") || !strings.Contains(res.Stderr, "0 failed") {
		t.Fatalf("upload summary: %q", res.Stderr)
	}
	if left, _ := srv.ObjectNames(storageBucket, "pre/.plxfs-tmp/"); len(left) != 0 {
		t.Fatalf("temporary parts left: %q", left)
	}

	res = plx(t, common, "ls", "-r", "--output", "json", "ds:exp/run1")
	mustCode(t, "ls -r", res, 0)
	var ls struct {
		Dirs  []string `json:"dirs"`
		Files []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(res.Stdout), &ls); err != nil {
		t.Fatalf("ls json: %v", err)
	}
	var listed []string
	for _, f := range ls.Files {
		listed = append(listed, f.Name)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, sortedKeys(want)) {
		t.Fatalf("ls -r lists %d files, want %d", len(listed), len(want))
	}
	if !slices.Contains(ls.Dirs, "日本語") || !slices.Contains(ls.Dirs, "a/b/c/d/e") {
		t.Fatalf("ls -r dirs: %q", ls.Dirs)
	}

	dst := t.TempDir()
	res = plx(t, common, "download", "-r", "ds:exp/run1", dst)
	mustCode(t, "download -r", res, 0)
	if !strings.Contains(res.Stderr, "downloaded 1000 files") {
		t.Fatalf("download summary: %q", res.Stderr)
	}
	got := treeHashes(t, filepath.Join(dst, "run1"))
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		t.Fatalf("downloaded %d files, want %d", len(got), len(want))
	}
	for k, h := range want {
		if got[k] != h {
			t.Errorf("%s: SHA-256 differs", k)
		}
	}
	// Re-running resumes: everything complete is skipped.
	res = plx(t, common, "download", "-r", "ds:exp/run1", dst)
	mustCode(t, "download -r again", res, 0)
	if !strings.Contains(res.Stderr, "downloaded 0 files, 0 B") || !strings.Contains(res.Stderr, "1000 skipped") {
		t.Fatalf("re-run summary: %q", res.Stderr)
	}
}

// bleed are objects around "data" that rm -r and download -r of data must leave alone.
var bleed = []string{"pre/data/", "pre/data/x", "pre/data/sub/y", "pre/data2/z", "pre/data.csv", "pre/datax", "other/data/w"}

func TestStoragePrefixBleed(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{})
	for _, n := range bleed {
		if err := srv.PutObject(storageBucket, n, []byte(n), ""); err != nil {
			t.Fatal(err)
		}
	}
	dst := t.TempDir()
	mustCode(t, "download -r", plx(t, common, "download", "-r", "--no-basename", "ds:data", dst), 0)
	if got := sortedKeys(treeHashes(t, dst)); !slices.Equal(got, []string{"sub/y", "x"}) {
		t.Fatalf("download -r ds:data wrote %q", got)
	}
	res := plx(t, common, "rm", "-r", "ds:data")
	mustCode(t, "rm -r", res, 0)
	got, _ := srv.ObjectNames(storageBucket, "")
	if want := []string{"other/data/w", "pre/data.csv", "pre/data2/z", "pre/datax"}; !slices.Equal(got, want) {
		t.Fatalf("after rm -r ds:data: %q, want %q", got, want)
	}
}

func TestStorageHostileNames(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{})
	hostile := []string{"../../etc/passwd", "/abs", "a/../../x", "nul\x00byte", strings.Repeat("L", 300), "a//b", ".", "..", "clash"}
	for _, n := range append(hostile, "ok", "clash/inside") {
		if err := srv.PutObject(storageBucket, "pre/t/"+n, []byte("data"), ""); err != nil {
			t.Fatalf("%q: %v", n, err)
		}
	}
	sandbox := t.TempDir()
	target := filepath.Join(sandbox, "a", "b", "target")
	for _, remote := range []string{"ds:t", "gs://" + storageBucket + "/pre/t"} {
		res := plx(t, common, "download", "-r", "--no-basename", remote, target)
		mustCode(t, "download -r of hostile names", res, 1)
		if c := strings.Count(res.Stderr, "refused: "); c != len(hostile) {
			t.Fatalf("%d refusals, want %d:\n%s", c, len(hostile), res.Stderr)
		}
		if !strings.Contains(res.Stderr, fmt.Sprintf("%d failed", len(hostile))) {
			t.Fatalf("summary:\n%s", res.Stderr)
		}
		got := sortedKeys(treeHashes(t, sandbox))
		if want := []string{"a/b/target/clash/inside", "a/b/target/ok"}; !slices.Equal(got, want) {
			t.Fatalf("files in the sandbox: %q, want %q", got, want)
		}
	}
	// ls shows them, quoted where they would garble a terminal.
	res := plx(t, common, "ls", "ds:t")
	mustCode(t, "ls", res, 0)
	if !strings.Contains(res.Stdout, `"nul\x00byte"`) {
		t.Fatalf("ls output:\n%q", res.Stdout)
	}
}

// TestStorageFaultyServer: a server that throttles, fails, resets and truncates the first
// attempts still yields correct objects and files.
func TestStorageFaultyServer(t *testing.T) {
	p := faultproxy.New(7)
	srv, common := storageSetup(t, emulator.Options{Handler: p.Middleware})
	src := filepath.Join(t.TempDir(), "tree")
	for i := range 30 {
		fillRandom(t, filepath.Join(src, fmt.Sprintf("f%02d", i)), uint64(i), int64(1000+i*4099))
	}
	fillRandom(t, filepath.Join(src, "big"), 99, 5<<20+3)
	want := treeHashes(t, src)
	small := []string{"--part-size", "512KiB", "--compose-threshold", "2MiB", "--workers", "4"}

	p.SetRules(
		faultproxy.Rule{Name: "upload 503", Match: []string{"/upload/"}, Status: 503, First: 8},
		faultproxy.Rule{Name: "upload 429", Match: []string{"/upload/"}, Status: 429, First: 4},
		faultproxy.Rule{Name: "compose 500", Match: []string{"/compose"}, Status: 500, First: 1},
		faultproxy.Rule{Name: "list 503", Method: "GET", Match: []string{"/o?"}, Status: 503, First: 1},
	)
	mustCode(t, "upload through faults", plx(t, common, "upload", append(small, "-r", "--no-basename", src, "ds:f")...), 0)
	up := p.Stats()
	p.SetRules(
		faultproxy.Rule{Name: "read 503", Method: "GET", Match: []string{"generation="}, Status: 503, First: 5},
		faultproxy.Rule{Name: "read reset", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Reset, After: 100, First: 4},
		faultproxy.Rule{Name: "read truncate", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Truncate, After: 1000, First: 4},
	)
	dst := t.TempDir()
	mustCode(t, "download through faults", plx(t, common, "download", append(small, "-r", "--no-basename", "ds:f", dst)...), 0)
	down := p.Stats()
	t.Logf("faults injected: %v", down.ByRule)
	if up.ByRule["upload 503"] == 0 || down.ByRule["read reset"] == 0 || down.ByRule["read truncate"] == 0 {
		t.Fatalf("faults were not injected: %v", down.ByRule)
	}
	got := treeHashes(t, dst)
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		t.Fatalf("downloaded %q", sortedKeys(got))
	}
	for k, h := range want {
		if got[k] != h {
			t.Errorf("%s differs", k)
		}
	}
	if left, _ := srv.ObjectNames(storageBucket, "pre/.plxfs-tmp/"); len(left) != 0 {
		t.Fatalf("temporary parts left: %q", left)
	}
}

// TestStorageComposeManyParts: 36 parts need a nested compose; a compose that keeps failing
// leaves neither the object nor any part behind, and exits 1.
func TestStorageComposeManyParts(t *testing.T) {
	p := faultproxy.New(3)
	srv, common := storageSetup(t, emulator.Options{Handler: p.Middleware})
	file := filepath.Join(t.TempDir(), "model.bin")
	fillRandom(t, file, 5, 36*(256<<10)-100)
	small := []string{"--part-size", "256KiB", "--compose-threshold", "1MiB"}

	srv.ResetCounts()
	mustCode(t, "composed upload", plx(t, common, "upload", append(small, file, "ds:m")...), 0)
	if c := srv.Requests().Composes; c != 3 { // 32 + 4 parts, then the final compose of 2
		t.Fatalf("%d composes, want 3", c)
	}
	dst := t.TempDir()
	mustCode(t, "download", plx(t, common, "download", "ds:m/model.bin", dst), 0)
	if a, b := treeHashes(t, filepath.Dir(file)), treeHashes(t, dst); a["model.bin"] != b["model.bin"] {
		t.Fatal("content differs")
	}

	p.SetRules(faultproxy.Rule{Name: "compose 503", Match: []string{"/compose"}, Status: 503})
	res := plx(t, common, "upload", append(small, "--no-basename", file, "ds:failed.bin")...)
	mustCode(t, "upload with compose refused", res, 1)
	if !strings.Contains(res.Stderr, "failed.bin") || !strings.Contains(res.Stderr, "1 failed") {
		t.Fatalf("stderr:\n%s", res.Stderr)
	}
	got, _ := srv.ObjectNames(storageBucket, "")
	if !slices.Equal(got, []string{"pre/m/model.bin"}) {
		t.Fatalf("objects after the failed upload: %q", got)
	}
}

// TestStorageInterruptedDownload: a download killed (SIGKILL) or interrupted (SIGINT) half way
// never leaves a file under the final name; SIGINT also removes its temporary file.
func TestStorageInterruptedDownload(t *testing.T) {
	p := faultproxy.New(5)
	srv, common := storageSetup(t, emulator.Options{Backend: "filesystem", Handler: p.Middleware})
	blob := filepath.Join(t.TempDir(), "blob")
	fillRandom(t, blob, 1, 32<<20)
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	if err = srv.PutObject(storageBucket, "pre/big.bin", data, ""); err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			// The first two parts arrive, the others stall until the process dies.
			p.SetRules(faultproxy.Rule{Name: "stall", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Stall, Stall: time.Minute, Skip: 2})
			p.ResetStats()
			dir := t.TempDir()
			args := append([]string{"download"}, common...)
			args = append(args, "--part-size", "4MiB", "--workers", "4", "ds:big.bin", dir)
			cmd := exec.Command(plxfsBin, args...)
			cmd.SysProcAttr = dieWithTest()
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(30 * time.Second)
			for p.Stats().ByRule["stall"] < 2 {
				if time.Now().After(deadline) {
					cmd.Process.Kill()
					t.Fatalf("the download never reached the stalled parts; stderr:\n%s", stderr.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 1 || !strings.Contains(entries[0].Name(), ".plxfs-") {
				t.Fatalf("while downloading, the directory holds %v; want only a temporary file", entries)
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			if err == nil {
				t.Fatal("interrupted download exited 0")
			}
			if _, err := os.Stat(filepath.Join(dir, "big.bin")); !os.IsNotExist(err) {
				t.Fatalf("final file exists after %v: %v", sig, err)
			}
			entries, _ = os.ReadDir(dir)
			if sig == syscall.SIGINT {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(stderr.String(), "interrupted") {
					t.Fatalf("SIGINT: %v, stderr:\n%s", err, stderr.String())
				}
				if len(entries) != 0 {
					t.Fatalf("temporary file left after SIGINT: %v", entries[0].Name())
				}
			}
			// Once the server behaves, the download completes.
			p.Clear()
			mustCode(t, "download after the interruption", runPlxfs(t, nil, args...), 0)
			got, err := os.ReadFile(filepath.Join(dir, "big.bin"))
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("resumed download differs (%v)", err)
			}
			os.Remove(filepath.Join(dir, "big.bin"))
		})
	}
}
