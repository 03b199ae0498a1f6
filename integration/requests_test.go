package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
)

// Request budgets of the read path, counted at the emulator (issue 12, items 3 and 4): what a
// listing already told the mount is never asked again.
//
//   - `ls -l` of a cold directory costs its listing pages (1,000 entries a page) and nothing
//     per entry;
//   - reading a small file whose size and generation came from that listing costs one GET of
//     the whole object, of that generation: no stat, no second range.
//
// Both hold on a read-write mount (the default flags) and on a --read-only one.
func TestMountRequestBudget(t *testing.T) {
	for _, mode := range []struct {
		name  string
		flags []string
	}{
		{"read-write", nil},
		{"read-only", []string{"--read-only"}},
	} {
		t.Run(mode.name, func(t *testing.T) { testRequestBudget(t, mode.flags) })
	}
}

func testRequestBudget(t *testing.T, flags []string) {
	const (
		bucket  = "counts"
		entries = 1000
		files   = 200 // read after the listing, one in five
	)
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{bucket}})
	contents := make([][]byte, entries)
	gens := make([]int64, entries)
	for i := range entries {
		// 1 B to 64 KiB: all below the cache's random-read block and its chunk.
		contents[i] = genBytes(uint64(i), 1+(i*331)%(64<<10))
		gen, err := srv.PutObjectGen(bucket, fmt.Sprintf("ds/dir/f%04d", i), contents[i], "")
		if err != nil {
			t.Fatal(err)
		}
		gens[i] = gen
	}
	conf := mountConf(t, map[string]string{"ds": "gs://" + bucket + "/ds"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	startMount(t, srv, conf, mnt, t.TempDir(), flags...)
	dir := filepath.Join(mnt, "ds", "dir")

	// The directory's own lookup (a list of one and a stat, at once) is not the listing's.
	srv.ResetCounts()
	if _, err := os.Stat(dir); err != nil {
		t.Fatal(err)
	}
	lookup := srv.Requests()
	t.Logf("lookup of the directory: %d requests (%d lists, %d stats)", lookup.Total, lookup.Lists, lookup.Stats)

	srv.ResetCounts()
	out := run(t, "ls", "-l", dir)
	if lines := strings.Count(out, "\n"); lines != entries+1 { // "total" + one line per entry
		t.Fatalf("ls -l printed %d lines, want %d", lines, entries+1)
	}
	c := srv.Requests()
	wantPages := (entries + 999) / 1000
	t.Logf("ls -l of %d entries: %+v", entries, summary(c))
	if c.Lists != wantPages || c.Total != c.Lists {
		t.Errorf("ls -l of a cold %d-entry directory: %s; want exactly %d list request(s) and nothing else", entries, summary(c), wantPages)
	}

	// cat each of the files: one whole-object GET each, of the listed generation.
	var paths []string
	var want bytes.Buffer
	for i := 0; i < entries; i += entries / files {
		paths = append(paths, filepath.Join(dir, fmt.Sprintf("f%04d", i)))
		want.Write(contents[i])
	}
	srv.ResetCounts()
	got, err := exec.Command("cat", paths...).Output()
	if err != nil {
		t.Fatalf("cat: %v", err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("cat of %d files: %d bytes differ from the objects' %d", len(paths), len(got), want.Len())
	}
	c = srv.Requests()
	t.Logf("cat of %d files after the listing: %s", len(paths), summary(c))
	if c.MediaGets != len(paths) || c.Total != c.MediaGets {
		t.Errorf("cat of %d listed files: %s; want exactly %d media GETs and nothing else", len(paths), summary(c), len(paths))
	}
	for i := 0; i < entries; i += entries / files {
		name := fmt.Sprintf("ds/dir/f%04d", i)
		reads := c.ReadsOf(bucket, name)
		whole := fmt.Sprintf("bytes=0-%d", len(contents[i])-1)
		gen := fmt.Sprint(gens[i])
		switch {
		case len(reads) != 1:
			t.Errorf("%s: %d GETs %+v, want 1", name, len(reads), reads)
		case reads[0].Range != "" && reads[0].Range != whole:
			t.Errorf("%s (%d bytes): GET of range %q, want the whole object", name, len(contents[i]), reads[0].Range)
		case reads[0].Generation != gen:
			t.Errorf("%s: GET of generation %q, want the listed %s", name, reads[0].Generation, gen)
		}
	}

	// Read again: served from the cache (or the kernel's pages), nothing sent.
	srv.ResetCounts()
	if again, err := exec.Command("cat", paths...).Output(); err != nil || !bytes.Equal(again, want.Bytes()) {
		t.Fatalf("second cat: %v", err)
	}
	if c := srv.Requests(); c.Total != 0 {
		t.Errorf("second cat of %d cached files: %s; want no request", len(paths), summary(c))
	}

	// Files opened by name in a directory never listed (a reader with its own file list): the
	// first lookups ask the bucket (a list of one under "name/" and a stat, at once), then the
	// directory is listed once (fs/dir.go lookupListThreshold), and every file costs its GET.
	const byNameDir, byName, lookupsBeforeListing = "ds/named/", 50, 4
	for i := range byName {
		if err := srv.PutObject(bucket, fmt.Sprintf("%sf%04d", byNameDir, i), contents[i], ""); err != nil {
			t.Fatal(err)
		}
	}
	paths, want = nil, bytes.Buffer{}
	for i := range byName {
		paths = append(paths, filepath.Join(mnt, byNameDir, fmt.Sprintf("f%04d", i)))
		want.Write(contents[i])
	}
	if _, err := os.Stat(filepath.Join(mnt, byNameDir)); err != nil {
		t.Fatal(err)
	}
	srv.ResetCounts()
	if got, err := exec.Command("cat", paths...).Output(); err != nil || !bytes.Equal(got, want.Bytes()) {
		t.Fatalf("cat by name: %v (%d bytes, want %d)", err, len(got), want.Len())
	}
	c = srv.Requests()
	t.Logf("cat of %d files by name, no listing first: %s", byName, summary(c))
	if c.Stats != lookupsBeforeListing || c.Lists != lookupsBeforeListing+1 || c.MediaGets != byName || c.Total != c.Stats+c.Lists+c.MediaGets {
		t.Errorf("cat of %d files by name in an unlisted directory: %s; want %d stats, %d lists, %d media GETs and nothing else",
			byName, summary(c), lookupsBeforeListing, lookupsBeforeListing+1, byName)
	}
}

// summary prints the counters that are not zero.
func summary(c emulator.Counts) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests", c.Total)
	for _, f := range []struct {
		name string
		n    int
	}{
		{"lists", c.Lists}, {"stats", c.Stats}, {"media GETs", c.MediaGets}, {"uploads", c.Uploads},
		{"composes", c.Composes}, {"copies", c.Copies}, {"deletes", c.Deletes}, {"patches", c.Patches}, {"other", c.Other},
	} {
		if f.n != 0 {
			fmt.Fprintf(&b, ", %d %s", f.n, f.name)
		}
	}
	return b.String()
}
