package warmup

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
)

func put(t *testing.T, b store.Bucket, name string, n int) {
	t.Helper()
	w, err := b.NewWriter(context.Background(), name, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + len(name))
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func names(objs []cache.Object) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.Name)
	}
	slices.Sort(out)
	return out
}

// TestListFullNames: the objects below a directory of a connection are named in full (as the
// mount's cache keys them), placeholders and empty objects are left out, a path naming one
// object is that object, and a path naming nothing is no object.
func TestListFullNames(t *testing.T) {
	b := memstore.New("bkt")
	put(t, b, "pre/d/a", 10)
	put(t, b, "pre/d/sub/b", 20)
	put(t, b, "pre/d/", 0)
	put(t, b, "pre/d/empty", 0)
	put(t, b, "pre/d2/c", 5)
	put(t, b, "pre/one", 7)
	ctx := context.Background()
	objs, err := List(ctx, b, "pre/", "d")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := names(objs), []string{"pre/d/a", "pre/d/sub/b"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v", got, want)
	}
	if objs[0].Bucket != "bkt" || objs[0].Generation <= 0 || !objs[0].HasCRC32C {
		t.Fatalf("object %+v lacks its bucket, generation or CRC", objs[0])
	}
	objs, err = List(ctx, b, "pre/", "one")
	if err != nil || !slices.Equal(names(objs), []string{"pre/one"}) {
		t.Fatalf("List of one object = %v, %v", names(objs), err)
	}
	objs, err = List(ctx, b, "pre/", "missing")
	if err != nil || len(objs) != 0 {
		t.Fatalf("List of nothing = %v, %v", names(objs), err)
	}
	objs, err = List(ctx, b, "", "")
	if err != nil || len(objs) != 4 {
		t.Fatalf("List of the whole bucket = %v, %v", names(objs), err)
	}
}

// TestRun: a dry run reads nothing; a run caches every object; a second run reads nothing;
// a set larger than the cache is refused unless forced.
func TestRun(t *testing.T) {
	b := memstore.New("bkt")
	for i := range 6 {
		put(t, b, "p/f"+string(rune('0'+i)), 100<<10+i)
	}
	put(t, b, "p/big", 3<<20+1)
	ctx := context.Background()
	objs, err := List(ctx, b, "", "p")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(cache.Options{Dir: t.TempDir(), ChunkSize: 1 << 20, MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	opts := Options{Workers: 4, MaxBytes: 64 << 20}

	dry := opts
	dry.DryRun = true
	res, err := Run(ctx, c, b, objs, dry)
	if err != nil || res.Files != 7 || res.Skipped != 0 || !res.Fits() || b.Requests()[memstore.OpRead] != 0 {
		t.Fatalf("dry run: %+v, %v, %d reads", res, err, b.Requests()[memstore.OpRead])
	}
	res, err = Run(ctx, c, b, objs, opts)
	if err != nil || res.Files != 7 || res.Failed != 0 || res.Bytes != res.Total {
		t.Fatalf("run: %+v, %v", res, err)
	}
	for _, o := range objs {
		if whole, _ := c.Cached(o); !whole {
			t.Fatalf("%s not cached after the run", o.Name)
		}
	}
	reads := b.Requests()[memstore.OpRead]
	res, err = Run(ctx, c, b, objs, opts)
	if err != nil || res.Files != 0 || res.Skipped != 7 || b.Requests()[memstore.OpRead] != reads {
		t.Fatalf("second run: %+v, %v, %d more reads", res, err, b.Requests()[memstore.OpRead]-reads)
	}

	small := opts
	small.MaxBytes = 1 << 20
	_, err = Run(ctx, c, b, objs, small)
	var tooBig *TooBigError
	if !errors.As(err, &tooBig) || tooBig.Result.Footprint <= small.MaxBytes {
		t.Fatalf("run over the bound: %v", err)
	}
}
