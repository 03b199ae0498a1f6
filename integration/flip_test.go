package integration

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestFaultFlippedBytes reads through a mount while one byte is flipped in 10% of the object
// responses. Objects read whole in one request (at most one chunk) are checked against their
// CRC32C before a byte is served: not one wrong byte, only verified reads or EIO. Chunks of
// larger objects are served as they arrive (SEMANTICS.md says so), but once a read has seen
// all of an object, a damaged chunk is no longer held: with the faults off, every object reads
// right from the same mount, the first time for small objects, after one whole read for
// large ones.
func TestFaultFlippedBytes(t *testing.T) {
	p := faultproxy.New(23)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	const mib = 1 << 20
	objs := map[string][]byte{}
	var small, large []string
	for i, n := range []int{1, 4096, 65536, 300_000, mib - 1, mib} {
		name := fmt.Sprintf("f/small%d", i)
		objs[name] = randData(uint64(300+i), n)
		small = append(small, name)
	}
	for i := range 4 {
		name := fmt.Sprintf("f/large%d", i)
		objs[name] = randData(uint64(400+i), 3*mib+i*4099)
		large = append(large, name)
	}
	for name, data := range objs {
		if err := srv.PutObject(relBucket, "pre/"+name, data, ""); err != nil {
			t.Fatal(err)
		}
	}
	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: relConns(t),
		flags: []string{"--chunk-size", "1MiB", "--cache-size", "4MiB", "--prefetch-memory", "2MiB", "--ttl", "1s"}}) // a small cache and memory: reads keep fetching

	// Requests that name an object (its bytes; the listings that supply names and attributes
	// name a prefix only), byte 1,000 of the response flipped.
	p.SetRules(
		faultproxy.Rule{Name: "flip small", Method: "GET", Match: []string{"small"}, Action: faultproxy.Flip, After: 1000, Prob: 0.10},
		faultproxy.Rule{Name: "flip large", Method: "GET", Match: []string{"large"}, Action: faultproxy.Flip, After: 1000, Prob: 0.10})
	p.ResetStats()
	var smallRes, largeRes tally
	var mu sync.Mutex
	largeWrong := 0
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for range 30 {
				if rng.IntN(3) > 0 {
					name := small[rng.IntN(len(small))]
					classifyRead(&smallRes, name, readVerified(d.path("ds", name), objs[name]))
					continue
				}
				name := large[rng.IntN(len(large))]
				err := readVerified(d.path("ds", name), objs[name])
				if isWrong(err) {
					mu.Lock()
					largeWrong++
					mu.Unlock()
					largeRes.add("wrong (served as it arrived, then dropped)")
					continue
				}
				classifyRead(&largeRes, name, err)
			}
		}()
	}
	wg.Wait()
	st := p.Stats()
	t.Logf("whole-object reads under 10%% flipped responses: %v", smallRes.String())
	t.Logf("large-object reads: %v", largeRes.String())
	t.Logf("requests %d, bytes flipped in %d responses", st.Requests, st.Faults)
	smallRes.failIfBad(t, "whole-object reads under flipped bytes")
	largeRes.failIfBad(t, "large-object reads under flipped bytes")
	if st.Faults == 0 || smallRes.get("verified") == 0 {
		t.Fatalf("the test proved nothing: %d flips, %d whole-object reads verified", st.Faults, smallRes.get("verified"))
	}

	// Faults off. Small objects read right at once. A large object that a read under faults
	// did not see whole may still hold a damaged chunk: the first whole read finds it (and
	// drops it), the second is right.
	p.Clear()
	time.Sleep(1100 * time.Millisecond) // let listings and attributes expire
	var after tally
	for _, name := range small {
		if err := readVerified(d.path("ds", name), objs[name]); err != nil {
			after.bad("%s after the faults stopped: %v", name, err)
		} else {
			after.add("verified")
		}
	}
	for _, name := range large {
		first := readVerified(d.path("ds", name), objs[name])
		if err := readVerified(d.path("ds", name), objs[name]); err != nil {
			after.bad("%s, second whole read after the faults stopped: %v (first: %v)", name, err, first)
		} else if first != nil {
			after.add("verified on the second read")
		} else {
			after.add("verified")
		}
	}
	t.Logf("after the faults stopped: %v; large reads that got a damaged chunk under faults: %d", after.String(), largeWrong)
	after.failIfBad(t, "reads after the faults stopped")
	if err := d.stop(60 * time.Second); err != nil {
		t.Errorf("daemon exit: %v\n%s", err, d.log())
	}
}
