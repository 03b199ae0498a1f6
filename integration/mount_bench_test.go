package integration

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/transfer"
)

// Benchmarks of the mount (run by `make bench`): the built daemon in its own process against
// fake-gcs-server on loopback (filesystem backend on tmpfs), each figure next to a baseline
// measured in the same run. They print a table; they assert nothing about speed.

const benchBig = 1 << 30

// benchRow is one line of the printed table.
type benchRow struct {
	what, value, baseline, ratio string
}

func printTable(title string, rows []benchRow) {
	fmt.Printf("\n%s\n%-52s %16s %16s %8s\n", title, "measure", "mount", "baseline", "ratio")
	for _, r := range rows {
		fmt.Printf("%-52s %16s %16s %8s\n", r.what, r.value, r.baseline, r.ratio)
	}
}

func mibps(n int64, d time.Duration) float64 { return float64(n) / (1 << 20) / d.Seconds() }

func fmtRate(n int64, d time.Duration) string { return fmt.Sprintf("%.0f MiB/s", mibps(n, d)) }

// peakRSS is a process's peak resident set (VmHWM), in MiB.
func peakRSS(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return float64(kb) / 1024
		}
	}
	return -1
}

// dropCaches empties the kernel's page cache (root only), so that "warm" means served from
// plxfs's disk cache, compared with a local file read from disk. Without root it drops what
// fadvise can reach (the file's own pages).
func dropCaches() {
	unix.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// readAll reads a file sequentially with 1 MiB reads, first dropping cached pages.
func readAll(tb testing.TB, p string) (int64, time.Duration) {
	tb.Helper()
	dropCaches()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	buf := make([]byte, 1<<20)
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
	if err != nil {
		tb.Fatal(err)
	}
	return n, time.Since(start)
}

// randomReads does n 4 KiB preads at offsets from seed (readahead off), returning IOPS.
func randomReads(tb testing.TB, p string, size int64, n int, seed uint64) float64 {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dropCaches()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	r := rand.New(rand.NewPCG(seed, 3))
	buf := make([]byte, 4096)
	start := time.Now()
	for i := 0; i < n; i++ {
		off := r.Int64N(size/4096) * 4096
		if _, err := f.ReadAt(buf, off); err != nil {
			tb.Fatal(err)
		}
	}
	return float64(n) / time.Since(start).Seconds()
}

func timeLsL(tb testing.TB, dir string) time.Duration {
	tb.Helper()
	start := time.Now()
	out, err := exec.Command("ls", "-l", dir).Output()
	if err != nil {
		tb.Fatal(err)
	}
	d := time.Since(start)
	if lines := strings.Count(string(out), "\n"); lines < 10_001 {
		tb.Fatalf("ls -l printed %d lines", lines)
	}
	return d
}

// seedBig stores a 1 GiB object streamed from a generator and keeps a local copy.
func seedBig(tb testing.TB, srv *emulator.Server, bucket, name, local string) {
	tb.Helper()
	data := make([]byte, benchBig)
	fillRand(rand.New(rand.NewPCG(1, 2)), data)
	if err := srv.PutObject(bucket, name, data, ""); err != nil {
		tb.Fatal(err)
	}
	if local != "" {
		if err := os.WriteFile(local, data, 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkMountRead: cold and warm sequential reads of 1 GiB, random 4 KiB reads, ls -l of
// 10,000 entries, 2,000 small files with 8 readers, and the daemon's peak RSS.
func BenchmarkMountRead(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchRead(b)
	}
}

func benchRead(b *testing.B) {
	srv, err := emulator.Start(emulator.Options{Backend: "filesystem", Buckets: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	local := filepath.Join(b.TempDir(), "local.bin")
	seedBig(b, srv, "bench", "big.bin", local)
	const randSize = 256 << 20
	randData := make([]byte, randSize)
	fillRand(rand.New(rand.NewPCG(5, 5)), randData)
	if err := srv.PutObject("bench", "rand.bin", randData, ""); err != nil {
		b.Fatal(err)
	}
	small := make([]byte, 64<<10)
	for i := 0; i < 10_000; i++ {
		if err := srv.PutObject("bench", fmt.Sprintf("dir/f%05d", i), small[:i%64], ""); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < 2_000; i++ {
		fillRand(rand.New(rand.NewPCG(uint64(i), 9)), small)
		if err := srv.PutObject("bench", fmt.Sprintf("small/f%04d", i), small, ""); err != nil {
			b.Fatal(err)
		}
	}

	// Baselines: the direct Go client (one stream), and the same bytes from a local file.
	ctx := context.Background()
	client, err := gcs.NewClient(ctx, gcs.Options{Endpoint: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	start := time.Now()
	r, err := client.Bucket("bench").NewRangeReader(ctx, "big.bin", 0, 0, -1)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		b.Fatal(err)
	}
	r.Close()
	direct := time.Since(start)
	start = time.Now()
	for token, pages := "", 0; pages == 0 || token != ""; pages++ {
		page, err := client.Bucket("bench").List(ctx, store.ListOptions{Prefix: "dir/", Delimiter: "/", PageToken: token})
		if err != nil {
			b.Fatal(err)
		}
		token = page.NextPageToken
	}
	listDirect := time.Since(start)

	conf := mountConf(b, map[string]string{"ds": "gs://bench"})
	mnt := filepath.Join(b.TempDir(), "mnt")
	// Read-only, as datasets are mounted in training jobs: that is where the kernel may read
	// wholly cached files itself (passthrough).
	d := startMount(b, srv, conf, mnt, b.TempDir(), "--cache-size", "4GiB", "--read-only")
	passthrough := "no"
	if strings.Contains(d.stderr.String(), "FUSE passthrough is on") {
		passthrough = "yes"
	}
	ds := filepath.Join(mnt, "ds")
	p := filepath.Join(ds, "big.bin")
	n, cold := readAll(b, p)
	if n != benchBig {
		b.Fatalf("read %d bytes", n)
	}
	rssRead := peakRSS(d.cmd.Process.Pid)
	// Warm re-reads against the local file, interleaved, each after dropping the page cache:
	// medians of five, since reads from disk vary from run to run on a shared machine. First
	// the cache's gigabyte, just written, is flushed and given time to settle on the virtual
	// disk, as the local file (written at setup) had.
	dropCaches()
	time.Sleep(3 * time.Second)
	var warms, locals []time.Duration
	for range 5 {
		_, w := readAll(b, p)
		_, l := readAll(b, local)
		warms, locals = append(warms, w), append(locals, l)
	}
	warm, localDur := median(warms), median(locals)

	randCold := randomReads(b, filepath.Join(ds, "rand.bin"), randSize, 2000, 1)
	randWarm := randomReads(b, filepath.Join(ds, "rand.bin"), randSize, 2000, 1)
	randLocal := randomReads(b, local, benchBig, 2000, 1)

	lsCold := timeLsL(b, filepath.Join(ds, "dir"))
	lsWarm := timeLsL(b, filepath.Join(ds, "dir"))
	localDir := filepath.Join(b.TempDir(), "dir")
	os.Mkdir(localDir, 0o755)
	for i := 0; i < 10_000; i++ {
		os.WriteFile(filepath.Join(localDir, fmt.Sprintf("f%05d", i)), small[:i%64], 0o644)
	}
	lsLocal := timeLsL(b, localDir)

	var next atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= 2000 {
					return
				}
				got, err := os.ReadFile(filepath.Join(ds, "small", fmt.Sprintf("f%04d", i)))
				if err != nil || len(got) != 64<<10 {
					b.Errorf("small file %d: %d bytes, %v", i, len(got), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	smallRate := 2000 / time.Since(start).Seconds()
	rssAll := peakRSS(d.cmd.Process.Pid)
	if err := d.stop(); err != nil {
		b.Errorf("stop: %v", err)
	}

	printTable("plxfs mount: reads (fake-gcs-server on loopback, filesystem backend on tmpfs)", []benchRow{
		{"cold sequential read 1 GiB (vs direct client)", fmtRate(n, cold), fmtRate(n, direct), fmt.Sprintf("%.2f", direct.Seconds()/cold.Seconds())},
		{"warm re-read, page cache dropped (vs local file)", fmtRate(n, warm), fmtRate(n, localDur), fmt.Sprintf("%.2f", localDur.Seconds()/warm.Seconds())},
		{"warm re-reads served by the kernel (passthrough)", passthrough, "", ""},
		{"random 4 KiB reads, cold (IOPS)", fmt.Sprintf("%.0f", randCold), "", ""},
		{"random 4 KiB reads, warm (IOPS, vs local file)", fmt.Sprintf("%.0f", randWarm), fmt.Sprintf("%.0f", randLocal), fmt.Sprintf("%.2f", randWarm/randLocal)},
		{"ls -l of 10,000 entries, cold (vs direct listing)", lsCold.Round(time.Millisecond).String(), listDirect.Round(time.Millisecond).String(), fmt.Sprintf("%.2f", listDirect.Seconds()/lsCold.Seconds())},
		{"ls -l of 10,000 entries, warm (vs local dir)", lsWarm.Round(time.Millisecond).String(), lsLocal.Round(time.Millisecond).String(), fmt.Sprintf("%.2f", lsLocal.Seconds()/lsWarm.Seconds())},
		{"2,000 files of 64 KiB, 8 readers (files/s)", fmt.Sprintf("%.0f", smallRate), "", ""},
		{"daemon peak RSS after reading 1 GiB (MiB)", fmt.Sprintf("%.0f", rssRead), "", ""},
		{"daemon peak RSS after all read benchmarks (MiB)", fmt.Sprintf("%.0f", rssAll), "", ""},
	})
	b.ReportMetric(direct.Seconds()/cold.Seconds(), "cold-read-ratio")
	b.ReportMetric(localDur.Seconds()/warm.Seconds(), "warm-read-ratio")
	b.ReportMetric(rssRead, "read-rss-MiB")
}

// BenchmarkMountWrite: a sequential 1 GiB write and close against a direct upload of the same
// size with the same upload options, the time close takes, 1,000 small files, and peak RSS.
func BenchmarkMountWrite(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchWrite(b)
	}
}

func benchWrite(b *testing.B) {
	srv, err := emulator.Start(emulator.Options{Backend: "filesystem", Buckets: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	block := make([]byte, 64<<20)
	fillRand(rand.New(rand.NewPCG(7, 7)), block)
	local := filepath.Join(b.TempDir(), "local.bin")
	lf, err := os.Create(local)
	if err != nil {
		b.Fatal(err)
	}
	for w := 0; w < benchBig; w += len(block) {
		lf.Write(block)
	}
	lf.Close()

	// The daemon's default upload options, for the direct baseline too.
	opts := transfer.Options{ChunkSize: 8 << 20, ComposeThreshold: 64 << 20, PartSize: 32 << 20, Workers: 4, Owner: "bench"}
	ctx := context.Background()
	client, err := gcs.NewClient(ctx, gcs.Options{Endpoint: srv.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	src, err := os.Open(local)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if _, err := transfer.Upload(ctx, client.Bucket("bench"), "direct.bin", src, benchBig, store.WriteOptions{}, opts); err != nil {
		b.Fatal(err)
	}
	direct := time.Since(start)
	src.Close()

	conf := mountConf(b, map[string]string{"ds": "gs://bench"})
	mnt := filepath.Join(b.TempDir(), "mnt")
	d := startMount(b, srv, conf, mnt, b.TempDir(), "--cache-size", "4GiB")
	ds := filepath.Join(mnt, "ds")
	f, err := os.Create(filepath.Join(ds, "big.bin"))
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for w := 0; w < benchBig; w += len(block) {
		if _, err := f.Write(block); err != nil {
			b.Fatal(err)
		}
	}
	wrote := time.Since(start)
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	total := time.Since(start)
	closeDur := total - wrote
	rssWrite := peakRSS(d.cmd.Process.Pid)

	if err := os.Mkdir(filepath.Join(ds, "small"), 0o755); err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for i := 0; i < 1000; i++ {
		if err := os.WriteFile(filepath.Join(ds, "small", fmt.Sprintf("f%04d", i)), block[:4096], 0o644); err != nil {
			b.Fatal(err)
		}
	}
	smallRate := 1000 / time.Since(start).Seconds()
	if err := d.stop(); err != nil {
		b.Errorf("stop: %v", err)
	}

	printTable("plxfs mount: writes (fake-gcs-server on loopback, filesystem backend on tmpfs)", []benchRow{
		{"sequential write 1 GiB + close (vs direct upload)", fmtRate(benchBig, total), fmtRate(benchBig, direct), fmt.Sprintf("%.2f", direct.Seconds()/total.Seconds())},
		{"  of which write() calls", wrote.Round(time.Millisecond).String(), "", ""},
		{"  of which close()", closeDur.Round(time.Millisecond).String(), "", ""},
		{"1,000 files of 4 KiB created and closed (files/s)", fmt.Sprintf("%.0f", smallRate), "", ""},
		{"daemon peak RSS during the 1 GiB write (MiB)", fmt.Sprintf("%.0f", rssWrite), "", ""},
	})
	b.ReportMetric(direct.Seconds()/total.Seconds(), "write-ratio")
	b.ReportMetric(closeDur.Seconds(), "close-s")
	b.ReportMetric(rssWrite, "write-rss-MiB")
}
