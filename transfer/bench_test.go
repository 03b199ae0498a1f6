package transfer

// Benchmarks of transfer against a plain single-stream Go client copy, in the same run, on
// the in-process emulator (filesystem backend on tmpfs) with local files on tmpfs, so that
// neither disk nor emulator lookups dominate. `make bench` runs
//
//	go test -run XXX -bench . ./transfer/
//
// and BenchmarkTransfer prints a table of throughputs and ratios (baseline time ÷ plxfs time)
// at the end. The small-file cases run twice: on bare loopback, where the emulator and both
// clients share the machine's CPUs and per-file CPU cost decides, and with a 5 ms delay
// before each request, a nearby region's round trip, which is what parallel transfers hide.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"golang.org/x/sync/errgroup"
	"google.golang.org/api/option"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store/gcs"
)

const (
	benchRTT        = 5 * time.Millisecond // a nearby GCS region, for the small-file cases
	benchBigSize    = 1 << 30
	benchSmallCount = 2000
	benchSmallSize  = 64 << 10
)

// benchResult is the best time per operation of one sub-benchmark.
type benchResult struct {
	bytes, files int64
	perOp        time.Duration
}

type benchTable struct {
	mu sync.Mutex
	r  map[string]benchResult
}

func (t *benchTable) record(name string, r benchResult) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.r[name]; !ok || r.perOp < old.perOp {
		t.r[name] = r
	}
}

// timed runs op b.N times, with setup and cleanup outside the timer. For the table it records
// the fastest single run, repeating runs shorter than 5 s (outside the timer) up to 3 in all:
// the machine is shared, and the fastest run is the one least disturbed.
func (t *benchTable) timed(b *testing.B, name string, bytes, files int64, setup func(i int), op func(i int) error, cleanup func(i int)) {
	b.Run(name, func(b *testing.B) {
		b.SetBytes(bytes)
		// once runs op i; only the op itself is timed, and only when timed is set.
		once := func(i int, timed bool) time.Duration {
			b.StopTimer()
			if setup != nil {
				setup(i)
			}
			if timed {
				b.StartTimer()
			}
			start := time.Now()
			err := op(i)
			d := time.Since(start)
			b.StopTimer()
			if err != nil {
				b.Fatal(err)
			}
			if cleanup != nil {
				cleanup(i)
			}
			return d
		}
		best := time.Duration(1<<63 - 1)
		for i := range b.N {
			best = min(best, once(i, true))
		}
		for extra := b.N; extra < 3 && best < 5*time.Second; extra++ {
			best = min(best, once(extra, false))
		}
		t.record(name, benchResult{bytes: bytes, files: files, perOp: best})
	})
}

func BenchmarkTransfer(b *testing.B) {
	ctx := context.Background()
	tmp := "/dev/shm"
	if fi, err := os.Stat(tmp); err != nil || !fi.IsDir() {
		tmp = ""
	}
	work, err := os.MkdirTemp(tmp, "plxfs-bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(work)
	// latency, when set, delays every request before the emulator sees it: the round trip to
	// a GCS region, which is what parallel requests hide and loopback does not show.
	var latency atomic.Int64
	delay := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if d := time.Duration(latency.Load()); d > 0 {
				time.Sleep(d)
			}
			next.ServeHTTP(w, r)
		})
	}
	emu, err := emulator.Start(emulator.Options{Backend: "filesystem", Buckets: []string{testBucket}, Handler: delay})
	if err != nil {
		b.Fatal(err)
	}
	defer emu.Stop()
	c, err := gcs.NewClient(ctx, gcs.Options{Endpoint: emu.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	bkt := c.Bucket(testBucket)
	// The baseline: cloud.google.com/go/storage used directly, as a user would against the
	// emulator, one stream, default settings.
	plain, err := storage.NewClient(ctx, option.WithEndpoint(emu.URL()+"/storage/v1/"), option.WithoutAuthentication())
	if err != nil {
		b.Fatal(err)
	}
	defer plain.Close()
	ph := plain.Bucket(testBucket)

	// Local sources and seeded objects.
	big := filepath.Join(work, "src", "big.bin")
	writeRandomFile(b, big, 1, benchBigSize)
	smallDir := filepath.Join(work, "src", "small")
	for i := range benchSmallCount {
		writeRandomFile(b, filepath.Join(smallDir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("f%04d", i)), uint64(i+2), benchSmallSize)
	}
	if _, err := UploadFile(ctx, bkt, big, "seed/big.bin", Options{}); err != nil {
		b.Fatal(err)
	}
	if s, err := UploadTree(ctx, bkt, smallDir, "seed/small", Options{Workers: 16}); err != nil || s.Failed > 0 {
		b.Fatalf("seeding: %+v %v", s, err)
	}

	t := &benchTable{r: map[string]benchResult{}}
	removeRemote := func(prefix string) func(int) {
		return func(i int) {
			if _, err := RemoveTree(ctx, bkt, fmt.Sprintf("%s%d", prefix, i), Options{Workers: 16}); err != nil {
				b.Fatal(err)
			}
		}
	}
	removeLocal := func(dir string) func(int) {
		return func(i int) { os.RemoveAll(filepath.Join(work, dir)) }
	}
	nBig, nSmall := int64(benchBigSize), int64(benchSmallCount*benchSmallSize)

	// One 1 GiB object.
	t.timed(b, "upload-1GiB/baseline", nBig, 1, nil, func(i int) error {
		return plainUpload(ctx, ph, big, fmt.Sprintf("up-base/%d/big.bin", i), -1)
	}, removeRemote("up-base/"))
	t.timed(b, "upload-1GiB/baseline-one-request", nBig, 1, nil, func(i int) error {
		return plainUpload(ctx, ph, big, fmt.Sprintf("up-one/%d/big.bin", i), 0)
	}, removeRemote("up-one/"))
	t.timed(b, "upload-1GiB/plxfs", nBig, 1, nil, func(i int) error {
		_, err := UploadFile(ctx, bkt, big, fmt.Sprintf("up-plxfs/%d/big.bin", i), Options{})
		return err
	}, removeRemote("up-plxfs/"))
	t.timed(b, "download-1GiB/baseline", nBig, 1, nil, func(i int) error {
		return plainDownload(ctx, ph, "seed/big.bin", filepath.Join(work, "dl", "big.bin"))
	}, removeLocal("dl"))
	t.timed(b, "download-1GiB/plxfs", nBig, 1, nil, func(i int) error {
		_, err := DownloadFile(ctx, bkt, "seed/big.bin", filepath.Join(work, "dl", "big.bin"), Options{})
		return err
	}, removeLocal("dl"))

	// 2,000 files of 64 KiB.
	var smallFiles []string
	filepath.Walk(smallDir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			smallFiles = append(smallFiles, p)
		}
		return nil
	})
	var seeded []string
	if _, files, err := List(ctx, bkt, "seed/small", true); err != nil {
		b.Fatal(err)
	} else {
		for _, a := range files {
			seeded = append(seeded, a.Name)
		}
	}
	smallCases := func(suffix string) {
		t.timed(b, "upload-2000x64KiB"+suffix+"/baseline", nSmall, benchSmallCount, nil, func(i int) error {
			for _, p := range smallFiles {
				rel, _ := filepath.Rel(smallDir, p)
				if err := plainUpload(ctx, ph, p, fmt.Sprintf("sup-base/%d/%s", i, filepath.ToSlash(rel)), -1); err != nil {
					return err
				}
			}
			return nil
		}, removeRemote("sup-base/"))
		t.timed(b, "upload-2000x64KiB"+suffix+"/plxfs", nSmall, benchSmallCount, nil, func(i int) error {
			s, err := UploadTree(ctx, bkt, smallDir, fmt.Sprintf("sup-plxfs/%d", i), Options{})
			if err == nil && s.Failed > 0 {
				err = s.Failures[0].Err
			}
			return err
		}, removeRemote("sup-plxfs/"))
		t.timed(b, "download-2000x64KiB"+suffix+"/baseline", nSmall, benchSmallCount, nil, func(i int) error {
			for _, rel := range seeded {
				if err := plainDownload(ctx, ph, "seed/small/"+rel, filepath.Join(work, "sdl", filepath.FromSlash(rel))); err != nil {
					return err
				}
			}
			return nil
		}, removeLocal("sdl"))
		t.timed(b, "download-2000x64KiB"+suffix+"/plxfs", nSmall, benchSmallCount, nil, func(i int) error {
			s, err := DownloadTree(ctx, bkt, "seed/small", filepath.Join(work, "sdl"), Options{})
			if err == nil && s.Failed > 0 {
				err = s.Failures[0].Err
			}
			return err
		}, removeLocal("sdl"))
	}
	smallCases("")
	latency.Store(int64(benchRTT))
	smallCases("+" + benchRTT.String() + "-rtt")
	latency.Store(0)

	fmt.Print(t.String())
}

func (t *benchTable) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	cases := map[string]bool{}
	for name := range t.r {
		cases[strings.Split(name, "/")[0]] = true
	}
	var names []string
	for c := range cases {
		names = append(names, c)
	}
	sort.Strings(names)
	var sb strings.Builder
	fmt.Fprintf(&sb, "\n%-28s %-36s %14s %14s %8s\n", "case", "baseline", "baseline", "plxfs", "ratio")
	rate := func(r benchResult) string {
		s := r.perOp.Seconds()
		if r.files > 1 {
			return fmt.Sprintf("%6.0f files/s", float64(r.files)/s)
		}
		return fmt.Sprintf("%7.1f MiB/s", float64(r.bytes)/s/(1<<20))
	}
	for _, c := range names {
		p, ok := t.r[c+"/plxfs"]
		if !ok {
			continue
		}
		for _, base := range []string{"baseline", "baseline-one-request"} {
			bl, ok := t.r[c+"/"+base]
			if !ok {
				continue
			}
			label := "single-stream Go client"
			if base == "baseline-one-request" {
				label = "Go client, one request (no chunks)"
			}
			fmt.Fprintf(&sb, "%-28s %-36s %14s %14s %7.2fx\n", c, label, rate(bl), rate(p), bl.perOp.Seconds()/p.perOp.Seconds())
		}
	}
	return sb.String()
}

// plainUpload copies a local file to an object with the Go client alone; chunk < 0 keeps the
// client's default chunk size.
func plainUpload(ctx context.Context, h *storage.BucketHandle, local, name string, chunk int) error {
	f, err := os.Open(local)
	if err != nil {
		return err
	}
	defer f.Close()
	w := h.Object(name).NewWriter(ctx)
	if chunk >= 0 {
		w.ChunkSize = chunk
	}
	if _, err := io.Copy(w, f); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// plainDownload copies an object to a local file with the Go client alone.
func plainDownload(ctx context.Context, h *storage.BucketHandle, name, local string) error {
	if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
		return err
	}
	r, err := h.Object(name).NewReader(ctx)
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.Create(local)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func writeRandomFile(b *testing.B, path string, seed uint64, n int) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	const block = 8 << 20
	var g errgroup.Group
	for off := 0; off < n; off += block {
		g.Go(func() error {
			_, err := f.WriteAt(randBytes(seed^uint64(off), min(block, n-off)), int64(off))
			return err
		})
		if off/block%4 == 3 {
			if err := g.Wait(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
}
