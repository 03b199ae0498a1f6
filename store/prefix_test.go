package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/store/storetest"
)

func startGCS(t *testing.T) (*emulator.Server, *gcs.Client) {
	t.Helper()
	em, err := emulator.Start(emulator.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Stop)
	c, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: em.URL(), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return em, c
}

// TestWithPrefixConformance runs the whole contract through a prefix view whose bucket also
// holds objects outside the prefix (and one next to it, sharing the prefix's first letters), so
// a leak in either direction fails the listing tests.
func TestWithPrefixConformance(t *testing.T) {
	em, c := startGCS(t)
	var n atomic.Int64
	newBucket := func(t *testing.T) store.Bucket {
		name := fmt.Sprintf("pre-%03d", n.Add(1))
		if err := em.CreateBucket(name); err != nil {
			t.Fatal(err)
		}
		for _, o := range []string{"outside", "pre/fixed", "pre/fix", "zzz/pre/fix/x"} {
			if err := em.PutObject(name, o, []byte("noise"), ""); err != nil {
				t.Fatal(err)
			}
		}
		return store.WithPrefix(c.Bucket(name), "pre/fix/")
	}
	storetest.Run(t, newBucket)
	storetest.RunPlaceholders(t, newBucket) // startGCS: the memory backend
}

func TestWithPrefixView(t *testing.T) {
	ctx := context.Background()
	em, c := startGCS(t)
	if err := em.CreateBucket("bk"); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"a/b/x", "a/b/y/z", "a/bx", "a/c", "top"} {
		if err := em.PutObject("bk", o, []byte(o), ""); err != nil {
			t.Fatal(err)
		}
	}
	raw := c.Bucket("bk")
	v := store.WithPrefix(raw, "a/b/")
	if v.Name() != "bk" {
		t.Fatalf("Name %q", v.Name())
	}
	if got := store.WithPrefix(raw, ""); got != raw {
		t.Fatal("empty prefix should return the bucket itself")
	}

	opts := store.ListOptions{Delimiter: "/"}
	p, err := v.List(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Prefix != "" {
		t.Fatalf("List modified the caller's options: %+v", opts)
	}
	if len(p.Objects) != 1 || p.Objects[0].Name != "x" || !slices.Equal(p.Prefixes, []string{"y/"}) {
		t.Fatalf("list %+v", p)
	}
	a, err := v.Stat(ctx, "y/z")
	if err != nil || a.Name != "y/z" {
		t.Fatalf("stat %+v %v", a, err)
	}
	if _, err := v.Stat(ctx, "../c"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("stat of a name outside the view: %v", err)
	}
	if _, err := v.Stat(ctx, ""); err == nil {
		t.Fatal("empty name accepted")
	}

	// Nested views concatenate.
	vv := store.WithPrefix(v, "y/")
	if a, err := vv.Stat(ctx, "z"); err != nil || a.Name != "z" {
		t.Fatalf("nested stat %+v %v", a, err)
	}

	// Writes land under the prefix; returned names are relative.
	w, err := v.NewWriter(ctx, "new", store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("n"))
	if a, err := w.Commit(); err != nil || a.Name != "new" {
		t.Fatalf("commit %+v %v", a, err)
	}
	if o, err := em.GetObject("bk", "a/b/new"); err != nil || string(o.Content) != "n" {
		t.Fatalf("underlying object %+v %v", o, err)
	}
	srcs := []string{"x", "new"}
	ca, err := v.Compose(ctx, "both", srcs, store.WriteOptions{})
	if err != nil || ca.Name != "both" || srcs[0] != "x" {
		t.Fatalf("compose %+v %v (srcs %q)", ca, err, srcs)
	}
	if o, err := em.GetObject("bk", "a/b/both"); err != nil || string(o.Content) != "a/b/xn" {
		t.Fatalf("composed underlying object %q %v", o.Content, err)
	}
}
