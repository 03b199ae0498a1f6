package cache_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
)

// store.Bucket is a cache.Source.
var _ cache.Source = store.Bucket(nil)

// TestThroughEmulator reads through store/gcs against fake-gcs-server: random reads match the
// object, 64 concurrent readers cost one ranged GET per chunk (counted at the emulator), and a
// gzip-encoded object is cached as its stored bytes.
func TestThroughEmulator(t *testing.T) {
	em, err := emulator.Start(emulator.Options{Buckets: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(em.Stop)
	client, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: em.URL(), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	bucket := client.Bucket("b")
	const chunk = 256 << 10
	c, err := cache.Open(cache.Options{Dir: t.TempDir(), ChunkSize: chunk, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })

	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 0))
	data := make([]byte, 9*chunk+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	gen, err := em.PutObjectGen("b", "dir/big.bin", data, "")
	if err != nil {
		t.Fatal(err)
	}
	obj := cache.Object{Bucket: "b", Name: "dir/big.bin", Generation: gen, Size: int64(len(data))}

	t.Run("64 readers, one GET per chunk", func(t *testing.T) {
		em.ResetCounts()
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for r := range 64 {
			wg.Go(func() {
				step := 100000 + 1000*r
				p := make([]byte, step)
				var got []byte
				for off := int64(0); ; off += int64(step) {
					n, err := c.ReadAt(context.Background(), bucket, obj, p, off)
					got = append(got, p[:n]...)
					if err == io.EOF {
						break
					}
					if err != nil {
						errs <- err
						return
					}
				}
				if !bytes.Equal(got, data) {
					errs <- fmt.Errorf("reader %d: bytes differ", r)
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		for c.Stats().FetchesInFlight > 0 {
			time.Sleep(time.Millisecond)
		}
		reads := em.Requests().ReadsOf("b", "dir/big.bin")
		seen := map[string]bool{}
		for _, r := range reads {
			if seen[r.Range] {
				t.Errorf("range %q fetched twice", r.Range)
			}
			seen[r.Range] = true
			if r.Generation != fmt.Sprint(gen) {
				t.Errorf("GET without the cached generation: %+v", r)
			}
		}
		if want := (len(data) + chunk - 1) / chunk; len(reads) != want {
			t.Errorf("%d GETs, want %d (one per chunk): %+v", len(reads), want, reads)
		}
	})

	t.Run("random reads", func(t *testing.T) {
		data := bytes.Clone(data)
		rng.Shuffle(len(data), func(i, j int) { data[i], data[j] = data[j], data[i] })
		gen, err := em.PutObjectGen("b", "dir/rand.bin", data, "")
		if err != nil {
			t.Fatal(err)
		}
		obj := cache.Object{Bucket: "b", Name: "dir/rand.bin", Generation: gen, Size: int64(len(data))}
		em.ResetCounts()
		for range 300 {
			off := rng.Int64N(obj.Size + 100)
			p := make([]byte, rng.IntN(3*chunk))
			if rng.IntN(2) == 0 {
				p = make([]byte, rng.IntN(5000))
			}
			n, err := c.ReadAt(context.Background(), bucket, obj, p, off)
			if err != nil && err != io.EOF {
				t.Fatal(err)
			}
			var want []byte
			if off < obj.Size {
				want = data[off:min(off+int64(len(p)), obj.Size)]
			}
			if !bytes.Equal(p[:n], want) {
				t.Fatalf("ReadAt(off %d, n %d): wrong bytes", off, len(p))
			}
		}
		t.Logf("%d GETs for 300 random reads", len(em.Requests().ReadsOf("b", "dir/rand.bin")))
	})

	t.Run("gzip object reads as stored bytes", func(t *testing.T) {
		var zbuf bytes.Buffer
		zw := gzip.NewWriter(&zbuf)
		zw.Write(bytes.Repeat([]byte("plxfs gzip "), 200000))
		zw.Close()
		stored := zbuf.Bytes()
		zgen, err := em.PutObjectGen("b", "z.txt", stored, "gzip")
		if err != nil {
			t.Fatal(err)
		}
		zobj := cache.Object{Bucket: "b", Name: "z.txt", Generation: zgen, Size: int64(len(stored))}
		p := make([]byte, len(stored)+10)
		n, err := c.ReadAt(context.Background(), bucket, zobj, p, 0)
		if err != io.EOF || !bytes.Equal(p[:n], stored) {
			t.Fatalf("gzip object: %d bytes, err %v; want its %d stored bytes and EOF", n, err, len(stored))
		}
	})
}
