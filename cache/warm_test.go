package cache

import (
	"context"
	"testing"
)

// TestCachedAfterWaitWrites: a generation read to its end through the cache is wholly cached
// once WaitWrites returns (the write-behind workers have written every chunk), costs what
// Footprint says against MaxBytes, counts as checked once read back from the disk, and a
// later read fetches nothing; another generation of the same name is not cached.
func TestCachedAfterWaitWrites(t *testing.T) {
	src := newFakeSource()
	ref := pattern(31, 3*testChunk+1234)
	obj := src.put("warm/a", 31, ref)
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: 64 * testChunk})
	ctx := context.Background()

	if whole, checked := c.Cached(obj); whole || checked {
		t.Fatalf("Cached before any read = %v, %v", whole, checked)
	}
	mustEqual(t, "read", readAll(t, c, src, obj, 1<<20), ref)
	if err := c.WaitWrites(ctx, obj); err != nil {
		t.Fatal(err)
	}
	whole, _ := c.Cached(obj)
	if !whole {
		t.Fatalf("not wholly cached after WaitWrites: %+v", c.Stats())
	}
	if got, want := c.Stats().Bytes, c.Footprint(obj); got != want {
		t.Fatalf("cache holds %d bytes for the object, Footprint says %d", got, want)
	}
	other := obj
	other.Generation++
	if whole, _ := c.Cached(other); whole {
		t.Fatal("another generation counts as cached")
	}

	dropMemory(t, c) // the next read comes from the data file
	fetches := len(src.reqs())
	mustEqual(t, "read back", readAll(t, c, src, obj, 1<<20), ref)
	if n := len(src.reqs()) - fetches; n != 0 {
		t.Fatalf("reading a cached object sent %d requests", n)
	}
	if whole, checked := c.Cached(obj); !whole || !checked {
		t.Fatalf("after reading it back from the disk Cached = %v, %v, want both", whole, checked)
	}

	// Reopened: cached, not yet checked in this process.
	c.Close()
	c2 := openTest(t, Options{Dir: c.root, ChunkSize: testChunk, MaxBytes: 64 * testChunk})
	if whole, checked := c2.Cached(obj); !whole || checked {
		t.Fatalf("after reopening Cached = %v, %v, want whole and unchecked", whole, checked)
	}
}

// TestWaitWritesSkipped: a chunk that cannot be written (larger than MaxBytes) does not keep
// WaitWrites waiting, and the object is not cached.
func TestWaitWritesSkipped(t *testing.T) {
	src := newFakeSource()
	ref := pattern(32, 2*testChunk)
	obj := src.put("big", 32, ref)
	c := openTest(t, Options{ChunkSize: testChunk, MaxBytes: testChunk / 2, Readahead: -1})
	mustEqual(t, "read", readAll(t, c, src, obj, 1<<20), ref)
	if err := c.WaitWrites(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	if whole, _ := c.Cached(obj); whole {
		t.Fatal("an object larger than the cache counts as cached")
	}
}
