package gcs

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/storetest"
)

// conformance runs the store contract against store/gcs over one emulator with the given
// backend, one fresh bucket per subtest.
func conformance(t *testing.T, backend string, wrap func(store.Bucket) store.Bucket) {
	em, err := emulator.Start(emulator.Options{Backend: backend})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Stop)
	c, err := NewClient(context.Background(), Options{Endpoint: em.URL(), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var n atomic.Int64
	newBucket := func(t *testing.T) store.Bucket {
		name := fmt.Sprintf("conf-%03d", n.Add(1))
		if err := em.CreateBucket(name); err != nil {
			t.Fatal(err)
		}
		return wrap(c.Bucket(name))
	}
	storetest.Run(t, newBucket)
	if backend == "memory" { // the filesystem backend keeps no "dir/" placeholder objects
		storetest.RunPlaceholders(t, newBucket)
	}
}

func same(b store.Bucket) store.Bucket { return b }

func TestConformanceMemory(t *testing.T)     { conformance(t, "memory", same) }
func TestConformanceFilesystem(t *testing.T) { conformance(t, "filesystem", same) }

// TestConformanceHedged runs the contract through the mount's stack of decorators (hedging
// and timeouts), so that they keep every answer, error and precondition as the contract says.
// The hedge floor is lower than the mount's, but high enough that a loaded machine does not
// make calls give up.
func TestConformanceHedged(t *testing.T) {
	conformance(t, "memory", func(b store.Bucket) store.Bucket {
		return store.WithTimeout(store.WithHedging(b, store.HedgeOptions{Floor: 300 * time.Millisecond, Ceiling: 5 * time.Second}), 30*time.Second)
	})
}
