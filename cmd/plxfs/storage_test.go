package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/transfer"
)

// storageEnv is an emulator with bucket "bkt" and a connections file: "ds" on gs://bkt/pre and
// "root" on the whole bucket.
type storageEnv struct {
	emu    *emulator.Server
	config string
}

func newStorageEnv(t *testing.T) *storageEnv {
	t.Helper()
	emu, err := emulator.Start(emulator.Options{Buckets: []string{"bkt"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Stop)
	config := filepath.Join(t.TempDir(), "conns.yaml")
	yaml := "connections:\n" +
		"- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://bkt/pre\"}\n" +
		"- name: root\n  kind: gcs\n  schema: {bucket: \"gs://bkt\"}\n"
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return &storageEnv{emu: emu, config: config}
}

// plxfs runs the CLI in-process with the env's config and endpoint, after the command name.
func (e *storageEnv) plxfs(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	full := append([]string{args[0], "--config", e.config, "--endpoint", e.emu.URL()}, args[1:]...)
	return runCLI(t, full...)
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer stderr.Close()
	code := run(context.Background(), append([]string{"plxfs"}, args...), stdout, stderr)
	out, _ := os.ReadFile(stdout.Name())
	errOut, _ := os.ReadFile(stderr.Name())
	return code, string(out), string(errOut)
}

func (e *storageEnv) put(t *testing.T, name, data string) {
	t.Helper()
	if err := e.emu.PutObject("bkt", name, []byte(data), ""); err != nil {
		t.Fatal(err)
	}
}

func (e *storageEnv) names(t *testing.T, prefix string) []string {
	t.Helper()
	n, err := e.emu.ObjectNames("bkt", prefix)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestStorageCommandsRegistered(t *testing.T) {
	app := newApp()
	for _, name := range []string{"ls", "rm", "upload", "download"} {
		if app.Command(name) == nil {
			t.Errorf("command %q is not registered in newApp", name)
		}
	}
}

func TestLs(t *testing.T) {
	e := newStorageEnv(t)
	for _, n := range []string{"pre/data/", "pre/data/x", "pre/data/sub/y", "pre/data2/z", "pre/data.csv", "other/q"} {
		e.put(t, n, n)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		out  string
	}{
		{"dir", []string{"ls", "ds:data"}, 0, "sub/\nx\n"},
		{"trailing slash", []string{"ls", "ds:data/"}, 0, "sub/\nx\n"},
		{"recursive", []string{"ls", "-r", "ds:data"}, 0, "sub/\nsub/y\nx\n"},
		{"connection root", []string{"ls", "ds:"}, 0, "data/\ndata2/\ndata.csv\n"},
		{"gs url", []string{"ls", "gs://bkt/pre/data"}, 0, "sub/\nx\n"},
		{"one object", []string{"ls", "ds:data.csv"}, 0, "data.csv\n"},
		{"missing", []string{"ls", "ds:nothing"}, 1, ""},
		{"no argument", []string{"ls"}, 2, ""},
		{"two arguments", []string{"ls", "ds:a", "ds:b"}, 2, ""},
		{"bad output", []string{"ls", "-o", "xml", "ds:data"}, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := e.plxfs(t, tc.args...)
			if code != tc.code || (tc.code == 0 && out != tc.out) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stdout %q", code, out, errOut, tc.code, tc.out)
			}
			if code != 0 && !strings.HasPrefix(errOut, "plxfs: ") {
				t.Fatalf("error not reported on stderr: %q", errOut)
			}
		})
	}
	code, out, _ := e.plxfs(t, "ls", "-l", "ds:data")
	if code != 0 || !strings.Contains(out, "sub/") || !strings.Contains(out, " 10 ") {
		t.Fatalf("ls -l: %d %q", code, out)
	}
	code, out, _ = e.plxfs(t, "ls", "--output", "json", "ds:data")
	var res lsResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("ls json: %d %q", code, out)
	}
	if !slices.Equal(res.Dirs, []string{"sub"}) || len(res.Files) != 1 || res.Files[0].Name != "x" || res.Files[0].Size != 10 || res.Files[0].Generation == 0 {
		t.Fatalf("ls json: %+v", res)
	}
}

func TestRm(t *testing.T) {
	e := newStorageEnv(t)
	seed := func() {
		for _, n := range []string{"pre/data/", "pre/data/x", "pre/data/sub/y", "pre/data2/z", "pre/data.csv", "pre/one"} {
			e.put(t, n, n)
		}
	}
	seed()
	code, out, _ := e.plxfs(t, "rm", "-r", "--dry-run", "ds:data")
	if code != 0 || out != "would delete data/\nwould delete data/sub/y\nwould delete data/x\n" {
		t.Fatalf("dry run: %d %q", code, out)
	}
	if n := len(e.names(t, "")); n != 6 {
		t.Fatalf("dry run deleted: %d objects left", n)
	}
	if code, _, errOut := e.plxfs(t, "rm", "ds:data"); code != 2 || !strings.Contains(errOut, "is a directory: use rm -r") {
		t.Fatalf("rm of a directory: %d %q", code, errOut)
	}
	code, _, errOut := e.plxfs(t, "rm", "-r", "-f", "ds:data")
	if code != 0 || !strings.Contains(errOut, "deleted 3 objects") {
		t.Fatalf("rm -r: %d %q", code, errOut)
	}
	if got := e.names(t, ""); !slices.Equal(got, []string{"pre/data.csv", "pre/data2/z", "pre/one"}) {
		t.Fatalf("left %q", got)
	}
	if code, _, _ := e.plxfs(t, "rm", "ds:one"); code != 0 || slices.Contains(e.names(t, ""), "pre/one") {
		t.Fatalf("rm one: %d", code)
	}
	if code, _, _ := e.plxfs(t, "rm", "-r", "ds:data.csv"); code != 0 || slices.Contains(e.names(t, ""), "pre/data.csv") {
		t.Fatalf("rm -r of an object: %d", code)
	}
	if code, _, _ := e.plxfs(t, "rm", "ds:missing"); code != 1 {
		t.Fatalf("rm missing: %d", code)
	}
	if code, _, _ := e.plxfs(t, "rm", "ds:"); code != 2 {
		t.Fatalf("rm of a whole connection without -r: %d", code)
	}
	// --polyaxonfile's -f alias gives way to rm -f; the long form still works.
	if code, _, errOut := e.plxfs(t, "rm", "-f", "--polyaxonfile", "/nonexistent", "ds:nothing"); code != 1 || !strings.Contains(errOut, "no such object") {
		t.Fatalf("rm -f with --polyaxonfile: %d %q", code, errOut)
	}
}

func TestUploadDownload(t *testing.T) {
	e := newStorageEnv(t)
	src := filepath.Join(t.TempDir(), "run1")
	files := map[string]string{"a.txt": "a", "sub/b.txt": "bb", "sub/deeper/c.log": "ccc", "empty": ""}
	for rel, data := range files {
		p := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte(data), 0o644)
	}
	if code, _, errOut := e.plxfs(t, "upload", src, "ds:exp"); code != 2 || !strings.Contains(errOut, "use upload -r") {
		t.Fatalf("upload of a directory without -r: %d %q", code, errOut)
	}
	code, _, errOut := e.plxfs(t, "upload", "-r", src, "ds:exp")
	if code != 0 || !strings.Contains(errOut, "uploaded 4 files, 6 B") || !strings.Contains(errOut, "0 failed") {
		t.Fatalf("upload -r: %d %q", code, errOut)
	}
	want := []string{"pre/exp/run1/a.txt", "pre/exp/run1/empty", "pre/exp/run1/sub/b.txt", "pre/exp/run1/sub/deeper/c.log"}
	if got := e.names(t, "pre/exp/"); !slices.Equal(got, want) {
		t.Fatalf("objects %q, want %q", got, want)
	}
	// --no-basename, --exclude; re-upload of identical files is skipped.
	code, _, errOut = e.plxfs(t, "upload", "-r", "--no-basename", "--exclude", "*.log", src, "ds:flat")
	if code != 0 || !slices.Equal(e.names(t, "pre/flat/"), []string{"pre/flat/a.txt", "pre/flat/empty", "pre/flat/sub/b.txt"}) {
		t.Fatalf("--no-basename: %d %q %q", code, errOut, e.names(t, "pre/flat/"))
	}
	if code, _, errOut = e.plxfs(t, "upload", "-r", src, "ds:exp"); code != 0 || !strings.Contains(errOut, "4 skipped") {
		t.Fatalf("re-upload: %d %q", code, errOut)
	}
	// A changed file: exit 1 with the failure listed; --skip-unchanged replaces it.
	os.WriteFile(filepath.Join(src, "a.txt"), []byte("changed"), 0o644)
	code, _, errOut = e.plxfs(t, "upload", "-r", src, "ds:exp")
	if code != 1 || !strings.Contains(errOut, "plxfs: exp/run1/a.txt: object exists and differs") {
		t.Fatalf("changed file: %d %q", code, errOut)
	}
	if code, _, errOut = e.plxfs(t, "upload", "-r", "--skip-unchanged", src, "ds:exp"); code != 0 || !strings.Contains(errOut, "uploaded 1 files") {
		t.Fatalf("--skip-unchanged: %d %q", code, errOut)
	}
	// Single files: basename under REMOTE, or REMOTE itself with --no-basename.
	single := filepath.Join(src, "sub", "b.txt")
	if code, _, _ := e.plxfs(t, "upload", single, "ds:singles"); code != 0 || !slices.Equal(e.names(t, "pre/singles/"), []string{"pre/singles/b.txt"}) {
		t.Fatalf("single upload: %d %q", code, e.names(t, "pre/singles/"))
	}
	if code, _, _ := e.plxfs(t, "upload", "--no-basename", single, "ds:renamed.txt"); code != 0 || !slices.Contains(e.names(t, "pre/"), "pre/renamed.txt") {
		t.Fatalf("single upload --no-basename: %d", code)
	}

	// Download the tree back: basename kept under LOCAL.
	dst := t.TempDir()
	code, _, errOut = e.plxfs(t, "download", "-r", "ds:exp/run1", dst)
	if code != 0 || !strings.Contains(errOut, "downloaded 4 files") {
		t.Fatalf("download -r: %d %q", code, errOut)
	}
	for rel, data := range files {
		if rel == "a.txt" {
			data = "changed"
		}
		got, err := os.ReadFile(filepath.Join(dst, "run1", filepath.FromSlash(rel)))
		if err != nil || string(got) != data {
			t.Fatalf("%s: %q %v", rel, got, err)
		}
	}
	if code, _, errOut = e.plxfs(t, "download", "-r", "ds:exp/run1", dst); code != 0 || !strings.Contains(errOut, "4 skipped") {
		t.Fatalf("re-download: %d %q", code, errOut)
	}
	// Single file download, and its errors.
	if code, _, _ = e.plxfs(t, "download", "ds:exp/run1/sub/b.txt", dst); code != 0 {
		t.Fatalf("single download: %d", code)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "b.txt")); string(got) != "bb" {
		t.Fatalf("b.txt %q", got)
	}
	if code, _, _ = e.plxfs(t, "download", "--no-basename", "ds:exp/run1/sub/b.txt", filepath.Join(dst, "x.txt")); code != 0 {
		t.Fatalf("single download --no-basename: %d", code)
	}
	if code, _, errOut = e.plxfs(t, "download", "ds:exp/run1", dst); code != 2 || !strings.Contains(errOut, "is a directory: use download -r") {
		t.Fatalf("download of a directory: %d %q", code, errOut)
	}
	if code, _, _ = e.plxfs(t, "download", "ds:nothing", dst); code != 1 {
		t.Fatalf("download of nothing: %d", code)
	}
	if code, _, _ = e.plxfs(t, "download", "--force", "--skip-unchanged", "ds:exp/run1/a.txt", dst); code != 2 {
		t.Fatalf("contradicting flags: %d", code)
	}
	if code, _, _ = e.plxfs(t, "download", "--since", "yesterday", "ds:exp/run1/a.txt", dst); code != 2 {
		t.Fatalf("bad --since: %d", code)
	}
}

func TestDownloadRefusesHostileNames(t *testing.T) {
	e := newStorageEnv(t)
	e.put(t, "pre/t/ok", "ok")
	e.put(t, "pre/t/../../escape", "bad")
	e.put(t, "pre/t/a//b", "bad")
	sandbox := t.TempDir()
	target := filepath.Join(sandbox, "target")
	code, _, errOut := e.plxfs(t, "download", "-r", "--no-basename", "ds:t", target)
	if code != 1 || !strings.Contains(errOut, "unsafe name") || !strings.Contains(errOut, "2 failed") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	var all []string
	filepath.Walk(sandbox, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			all = append(all, p)
		}
		return nil
	})
	if !slices.Equal(all, []string{filepath.Join(target, "ok")}) {
		t.Fatalf("files written: %q", all)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2024-05-01T10:00:00Z", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), true},
		{"2024-05-01T10:00:00+02:00", time.Date(2024, 5, 1, 8, 0, 0, 0, time.UTC), true},
		{"2024-05-01 10:00:00", time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC), true},
		{"2024-05-01", time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC), true},
		{"90m", now.Add(-90 * time.Minute), true},
		{"7d", now.Add(-7 * 24 * time.Hour), true},
		{"yesterday", time.Time{}, false},
		{"-2h", time.Time{}, false},
		{"", time.Time{}, false},
	} {
		got, err := parseSince(tc.in, now)
		if (err == nil) != tc.ok || tc.ok && !got.Equal(tc.want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "--since") {
			t.Errorf("error does not name the flag: %v", err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
	}{
		{"16MiB", 16 << 20}, {"64M", 64 << 20}, {"1GiB", 1 << 30}, {"256KiB", 256 << 10},
		{"262144", 262144}, {"5MB", 5000000}, {"100B", 100}, {"0", 0}, {"-1M", 0}, {"lots", 0},
	} {
		got, err := parseSize("--part-size", tc.in)
		if got != tc.want || (err == nil) != (tc.want > 0) {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
}

func TestSummaryLine(t *testing.T) {
	s := transfer.Summary{Files: 1000, Bytes: 200 << 20, Skipped: 3, Failed: 2, Elapsed: 4 * time.Second}
	want := "downloaded 1000 files, 200.0 MiB in 4s (50.0 MiB/s), 3 skipped, 2 failed"
	if got := summaryLine("download", false, s); got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := summaryLine("delete", false, transfer.Summary{Files: 2, Bytes: 10}); got != "deleted 2 objects, 10 B in 0s, 0 skipped, 0 failed" {
		t.Fatalf("got %q", got)
	}
	if got := summaryLine("upload", true, transfer.Summary{Files: 3, Bytes: 2048, Skipped: 1}); got != "would upload 3 files, 2.0 KiB, 1 skipped, 0 failed" {
		t.Fatalf("got %q", got)
	}
}

func TestConfirm(t *testing.T) {
	for in, want := range map[string]bool{"y\n": true, "YES\n": true, "n\n": false, "\n": false, "": false, "yes please\n": false} {
		var out bytes.Buffer
		if got := confirm(strings.NewReader(in), &out, "delete 11 objects?"); got != want || out.String() != "delete 11 objects? [y/N] " {
			t.Errorf("confirm(%q) = %v, prompt %q", in, got, out.String())
		}
	}
}

func TestDownloadGzipEncoded(t *testing.T) {
	e := newStorageEnv(t)
	plain := strings.Repeat("a line of a csv file\n", 5000)
	var stored bytes.Buffer
	zw := gzip.NewWriter(&stored)
	zw.Write([]byte(plain))
	zw.Close()
	if err := e.emu.PutObject("bkt", "pre/z/data.csv", stored.Bytes(), "gzip"); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if code, _, errOut := e.plxfs(t, "download", "--part-size", "1KiB", "ds:z/data.csv", dst); code != 0 {
		t.Fatalf("download: %d %q", code, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(dst, "data.csv")); string(got) != plain {
		t.Fatalf("decompressed download: %d bytes, want %d", len(got), len(plain))
	}
	// Re-running skips it (same mtime), and --raw keeps the stored bytes.
	if code, _, errOut := e.plxfs(t, "download", "-r", "--no-basename", "ds:z", dst); code != 0 || !strings.Contains(errOut, "1 skipped") {
		t.Fatalf("re-run: %d %q", code, errOut)
	}
	raw := t.TempDir()
	if code, _, errOut := e.plxfs(t, "download", "--raw", "ds:z/data.csv", raw); code != 0 {
		t.Fatalf("download --raw: %d %q", code, errOut)
	}
	if got, _ := os.ReadFile(filepath.Join(raw, "data.csv")); !bytes.Equal(got, stored.Bytes()) {
		t.Fatalf("raw download: %d bytes, want the %d stored", len(got), stored.Len())
	}
}
