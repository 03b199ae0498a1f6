package bucketstack_test

import (
	"testing"

	"github.com/plxfs/plxfs/internal/bucketstack"
	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
	"github.com/plxfs/plxfs/store/storetest"
)

// TestStackConformance: every stack keeps the store.Bucket contract of the bucket below.
func TestStackConformance(t *testing.T) {
	for name, o := range map[string]bucketstack.Options{
		"mount":            {Metrics: metrics.New()},
		"storage commands": {OpTimeout: -1, HedgeFloor: -1, NoBreaker: true},
		"no hedging":       {HedgeFloor: -1},
	} {
		t.Run(name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Bucket { return bucketstack.Wrap(memstore.New("bkt"), o) })
		})
	}
}
