package memstore

import (
	"context"
	"errors"
	"hash/crc32"
	"slices"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/storetest"
)

// TestConformance runs the store contract, the suite store/gcs passes against fake-gcs-server,
// against the in-memory bucket, bare and behind a prefix view.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Bucket { return New("mem") })
	storetest.RunPlaceholders(t, func(t *testing.T) store.Bucket { return New("mem") })
}

// TestConformancePrefixed runs it through store.WithPrefix, as a connection with a prefix does.
func TestConformancePrefixed(t *testing.T) {
	newBucket := func(t *testing.T) store.Bucket { return store.WithPrefix(New("mem"), "view/") }
	storetest.Run(t, newBucket)
	storetest.RunPlaceholders(t, newBucket)
}

// TestPreconditionsEverywhere checks what storetest cannot assert because fake-gcs-server does
// not enforce it, but GCS does and memstore must: preconditions on compose, copy, delete and
// metadata updates, and ErrNotExist for a missing compose source.
func TestPreconditionsEverywhere(t *testing.T) {
	ctx := context.Background()
	b := New("strict")
	a, _ := b.Put("x", []byte("x"), nil)
	b.Put("y", []byte("y"), nil)

	if _, err := b.Compose(ctx, "x", []string{"y"}, store.WriteOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("compose onto an existing object with IfGen 0: %v", err)
	}
	if _, err := b.Compose(ctx, "z", []string{"y", "missing"}, store.WriteOptions{}); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("compose of a missing source: %v", err)
	}
	if _, err := b.Copy(ctx, "y", 0, "x", store.WriteOptions{}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("copy onto an existing object with IfGen 0: %v", err)
	}
	if _, err := b.Copy(ctx, "y", 0, "x", store.WriteOptions{IfGen: a.Generation + 100}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("copy with a wrong IfGen: %v", err)
	}
	if _, err := b.UpdateMetadata(ctx, "x", a.Generation+100, map[string]string{"k": "v"}); !errors.Is(err, store.ErrPrecondition) {
		t.Errorf("metadata update of a stale generation: %v", err)
	}
	u, err := b.UpdateMetadata(ctx, "x", a.Generation, map[string]string{"k": "v"})
	if err != nil || u.Generation != a.Generation || u.Metageneration != a.Metageneration+1 {
		t.Errorf("metadata update: %+v %v (was %+v)", u, err, a)
	}
	if err := b.Delete(ctx, "x", a.Generation+100); !errors.Is(err, store.ErrNotExist) {
		t.Errorf("delete of a generation that never was: %v", err)
	}
	if got := b.Names(""); !slices.Equal(got, []string{"x", "y"}) {
		t.Errorf("objects after refused calls: %q", got)
	}
	if c, err := b.Compose(ctx, "xy", []string{"x", "y"}, store.WriteOptions{}); err != nil || c.MD5 != nil || c.CRC32C != crc32.Checksum([]byte("xy"), crc32c.Table) {
		t.Errorf("composite object: %+v %v (GCS keeps its CRC32C, no MD5)", c, err)
	}
}

// TestPageBoundsObjectsAndPrefixes: as on GCS, a page holds at most PageSize entries, objects
// and prefixes together, and a listing with a delimiter pages through both in name order.
func TestPageBoundsObjectsAndPrefixes(t *testing.T) {
	b := New("pages")
	for _, n := range []string{"a", "b/1", "b/2", "c", "d/x/y", "e", "f/", "g"} {
		b.Put(n, []byte(n), nil)
	}
	want := []string{"a", "b/", "c", "d/", "e", "f/", "g"}
	var got []string
	tok := ""
	for {
		p, err := b.List(context.Background(), store.ListOptions{Delimiter: "/", PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(p.Objects) + len(p.Prefixes); n > 2 {
			t.Fatalf("page of %d entries", n)
		}
		got = append(got, objNames(p)...)
		got = append(got, p.Prefixes...)
		if tok = p.NextPageToken; tok == "" {
			break
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Fatalf("paged listing %q, want %q", got, want)
	}
}

// TestPageBoundsTrailingDelimiter: with IncludeTrailingDelimiter, a placeholder comes in the
// page of its prefix, once, and counts as one entry with it, at every page size (GCS pages
// this way; fake-gcs-server repeats placeholders on every page, see storetest).
func TestPageBoundsTrailingDelimiter(t *testing.T) {
	b := New("pages")
	for _, n := range []string{"a", "b/", "b/1", "c/", "d/x", "e/", "e/y", "f"} {
		b.Put(n, []byte(n), nil)
	}
	wantObjs, wantPrefixes := []string{"a", "b/", "c/", "e/", "f"}, []string{"b/", "c/", "d/", "e/"}
	for _, size := range []int{1, 2, 3, 100} {
		var objs, prefixes []string
		tok := ""
		for {
			p, err := b.List(context.Background(), store.ListOptions{Delimiter: "/", PageSize: size, PageToken: tok, IncludeTrailingDelimiter: true})
			if err != nil {
				t.Fatal(err)
			}
			if n := len(p.Prefixes) + len(p.Objects) - countIn(p.Prefixes, objNames(p)); n > size {
				t.Fatalf("page size %d: page of %d entries: %q %q", size, n, objNames(p), p.Prefixes)
			}
			objs = append(objs, objNames(p)...)
			prefixes = append(prefixes, p.Prefixes...)
			if tok = p.NextPageToken; tok == "" {
				break
			}
		}
		if !slices.Equal(objs, wantObjs) || !slices.Equal(prefixes, wantPrefixes) {
			t.Fatalf("page size %d: objects %q prefixes %q; want %q %q", size, objs, prefixes, wantObjs, wantPrefixes)
		}
	}
}

// countIn counts the names that are also in set.
func countIn(set, names []string) int {
	n := 0
	for _, s := range names {
		if slices.Contains(set, s) {
			n++
		}
	}
	return n
}

func objNames(p store.Page) []string {
	var out []string
	for _, a := range p.Objects {
		out = append(out, a.Name)
	}
	return out
}

// TestNamesAndFaults: names GCS refuses are refused; an injected fault fails the call and
// changes nothing; Requests counts calls.
func TestNamesAndFaults(t *testing.T) {
	ctx := context.Background()
	b := New("faults")
	for _, name := range []string{"", "bad\nname", "\xff", strings.Repeat("n", 1025)} {
		if _, err := b.NewWriter(ctx, name, store.WriteOptions{}); err == nil {
			t.Errorf("NewWriter(%q) accepted", name)
		}
	}
	boom := errors.New("boom")
	b.SetFault(func(op Op, name string) error {
		if op == OpCommit && strings.HasPrefix(name, "fail/") {
			return boom
		}
		return nil
	})
	w, err := b.NewWriter(ctx, "fail/1", store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("data"))
	if _, err := w.Commit(); !errors.Is(err, boom) {
		t.Fatalf("commit with an injected fault: %v", err)
	}
	if names := b.Names("fail/"); len(names) != 0 {
		t.Fatalf("a failed commit left %q", names)
	}
	b.SetFault(nil)
	if r := b.Requests(); r[OpWrite] != 5 || r[OpCommit] != 1 {
		t.Fatalf("requests %v", r)
	}
}
