package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/shapeproxy"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/transfer"
)

// Benchmarks of the mount (run by `make bench`). fake-gcs-server runs as its own process
// (gcsProc: filesystem backend on tmpfs, plain HTTP on loopback), the built daemon runs as its
// own process with the default flags (read-write), then with --read-only, and every figure is
// set beside a baseline measured in the same run against the same emulator: direct GETs with a
// plain HTTP client, a direct listing, a direct upload, or a local file. Each figure is the
// median over runs of the per-run ratio; the table prints the range too. The benchmarks assert
// nothing about speed.
//
// The read benchmark runs once for each link profile (internal/shapeproxy): loopback talks to
// the emulator directly; region and slow put the shaping proxy, as a process of its own,
// between the emulator and every client, the daemon (--endpoint is the proxy) and the direct
// baselines alike. A shaped profile measures the cold sequential read against one GET, 4 and
// 16 ranged GETs (the best direct client), small files against serial and 8 parallel GETs, and
// 4 readers of 4 different big files at once against 16 ranged GETs of each at once and
// against the link's total bandwidth; its baselines are measured once a run, then each mode's
// rows on a fresh daemon. The write benchmark runs on loopback only.
//
// Environment (for quick runs while developing; the defaults are the sizes):
//
//	PLXFS_BENCH_RUNS      runs per figure (default 5)
//	PLXFS_BENCH_MIB       size of the big objects in MiB (default 1024)
//	PLXFS_BENCH_FILES     small files per set (default 2000, of 64 KiB)
//	PLXFS_BENCH_ENTRIES   entries of the listed directory (default 10000)
//	PLXFS_BENCH_PROFILES  link profiles of the read benchmark, in order (default
//	                      "loopback,region,slow")
//	PLXFS_BENCH_PPROF     a directory: the first run's daemons serve pprof, and CPU profiles of
//	                      the cold read, the small files with 8 readers and the cold ls -l are
//	                      saved there (paths printed)
type benchConf struct {
	runs           int
	big            int64 // bytes
	files, entries int
	pprofDir       string
	profiles       []shapeproxy.Link
}

const (
	smallSize = 64 << 10
	// mountListPageSize is the page size of the mount's listings (vfs/objects.go listPageSize):
	// the direct listing baseline uses the same.
	mountListPageSize = 1000
	// randomReadsN is the number of 4 KiB preads of the random-read rows.
	randomReadsN = 2000
)

func benchConfig(tb testing.TB) benchConf {
	c := benchConf{runs: 5, big: 1 << 30, files: 2000, entries: 10_000, pprofDir: os.Getenv("PLXFS_BENCH_PPROF")}
	envInt := func(name string, def int) int {
		v := os.Getenv(name)
		if v == "" {
			return def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			tb.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	c.runs = envInt("PLXFS_BENCH_RUNS", c.runs)
	c.big = int64(envInt("PLXFS_BENCH_MIB", int(c.big>>20))) << 20
	c.files = envInt("PLXFS_BENCH_FILES", c.files)
	c.entries = envInt("PLXFS_BENCH_ENTRIES", c.entries)
	names := os.Getenv("PLXFS_BENCH_PROFILES")
	if names == "" {
		names = "loopback,region,slow"
	}
	for _, name := range strings.Split(names, ",") {
		l, err := shapeproxy.Profile(strings.TrimSpace(name))
		if err != nil {
			tb.Fatalf("PLXFS_BENCH_PROFILES=%q: %v", names, err)
		}
		c.profiles = append(c.profiles, l)
	}
	if c.pprofDir != "" {
		if err := os.MkdirAll(c.pprofDir, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	return c
}

// sample is one run of one measure: how long the mount took and how long its baseline took
// for the same work (0: no baseline), and what the daemon spent meanwhile.
type sample struct {
	mount, base time.Duration
	cpu         float64 // daemon CPU seconds (user + system)
	rss         float64 // daemon peak RSS during the measure, MiB
	emu         float64 // emulator CPU seconds during the mount's run
	baseEmu     float64 // emulator CPU seconds during the baseline's run (-1: not measured)
	proxy       float64 // shaping proxy CPU seconds during the mount's run (-1: no proxy)
	baseProxy   float64 // the same during the baseline's run
	busy        float64 // fraction of the machine's CPUs busy during the mount's run (anyone's)
}

// baseRun is a baseline's run: its duration and the emulator's and the proxy's CPU seconds
// meanwhile (-1 for a local baseline, or without a proxy).
type baseRun struct {
	d          time.Duration
	emu, proxy float64
}

func localRun(d time.Duration) baseRun { return baseRun{d: d, emu: -1, proxy: -1} }

// with returns s with the baseline b.
func (s sample) with(b baseRun) sample {
	s.base, s.baseEmu, s.baseProxy = b.d, b.emu, b.proxy
	return s
}

// measure is one row of the table: the samples of all runs.
type measure struct {
	what     string
	work     float64 // in unit's numerator (MiB, files, reads); 0: print durations
	unit     string  // "MiB/s", "files/s", "IOPS"
	baseline string  // what the baseline is, e.g. "one GET"
	cpuPer   float64 // bytes the CPU figure is per GiB of (0: print the CPU time itself)
	samples  []sample
}

func (m *measure) add(s sample) { m.samples = append(m.samples, s) }

func medianOf(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (m *measure) values(f func(sample) float64) []float64 {
	var out []float64
	for _, s := range m.samples {
		out = append(out, f(s))
	}
	return out
}

func (m *measure) fmtFigure(d float64) string {
	if m.work == 0 {
		return (time.Duration(d * float64(time.Second))).Round(time.Millisecond).String()
	}
	r := m.work / d
	switch {
	case r >= 10_000:
		return fmt.Sprintf("%.1fk %s", r/1000, m.unit)
	default:
		return fmt.Sprintf("%.0f %s", r, m.unit)
	}
}

func (m *measure) mountFig() string {
	return m.fmtFigure(medianOf(m.values(func(s sample) float64 { return s.mount.Seconds() })))
}

func (m *measure) baseFig() string {
	if m.samples[0].base == 0 {
		return ""
	}
	return m.fmtFigure(medianOf(m.values(func(s sample) float64 { return s.base.Seconds() })))
}

// ratios are baseline time ÷ mount time for the same work (> 1: the mount is faster).
func (m *measure) ratios() []float64 {
	return m.values(func(s sample) float64 { return s.base.Seconds() / s.mount.Seconds() })
}

func (m *measure) ratioFig() (med, lo, hi string) {
	if m.samples[0].base == 0 {
		return "", "", ""
	}
	r := m.ratios()
	return fmt.Sprintf("%.2f", medianOf(r)), fmt.Sprintf("%.2f", slices.Min(r)), fmt.Sprintf("%.2f", slices.Max(r))
}

func (m *measure) cpuFig() string {
	c := medianOf(m.values(func(s sample) float64 { return s.cpu }))
	if c < 0 {
		return ""
	}
	if m.cpuPer > 0 {
		return fmt.Sprintf("%.2f s/GiB", c*float64(1<<30)/m.cpuPer)
	}
	return fmt.Sprintf("%.0f ms", c*1000)
}

// emuFig is the emulator's CPU during the mount's run and during the baseline's.
func (m *measure) emuFig() string {
	return m.cpuPairFig(func(s sample) float64 { return s.emu }, func(s sample) float64 { return s.baseEmu })
}

// proxyFig is the shaping proxy's CPU during the mount's run and during the baseline's.
func (m *measure) proxyFig() string {
	return m.cpuPairFig(func(s sample) float64 { return s.proxy }, func(s sample) float64 { return s.baseProxy })
}

// cpuPairFig prints the medians of a process's CPU during the mount's run and the baseline's,
// per GiB for the rows that have a size.
func (m *measure) cpuPairFig(mount, base func(sample) float64) string {
	e := medianOf(m.values(mount))
	be := medianOf(m.values(base))
	if e < 0 {
		return ""
	}
	scale, unit := 1000.0, " ms"
	if m.cpuPer > 0 {
		scale, unit = float64(1<<30)/m.cpuPer, ""
	}
	num := "%.2f"
	if unit != "" {
		num = "%.0f"
	}
	if be < 0 {
		return fmt.Sprintf(num+"%s", e*scale, unit)
	}
	return fmt.Sprintf(num+" / "+num+"%s", e*scale, be*scale, unit)
}

func (m *measure) busyFig() string {
	b := medianOf(m.values(func(s sample) float64 { return s.busy }))
	if b < 0 {
		return ""
	}
	return fmt.Sprintf("%.0f%%", 100*b)
}

func (m *measure) rssFig() string {
	r := medianOf(m.values(func(s sample) float64 { return s.rss }))
	if r < 0 {
		return ""
	}
	return fmt.Sprintf("%.0f MiB", r)
}

// printMeasures prints the table, then the same figures as rows for the README's Performance
// table.
func printMeasures(title string, runs int, ms []*measure) {
	fmt.Printf("\n%s (median of %d runs; ratio = baseline time ÷ mount time, per run)\n", title, runs)
	fmt.Println("(CPU per GiB read or written, or in all; emulator and proxy CPU during the mount's run / the baseline's; busy: the machine's CPUs during the mount's run)")
	fmt.Printf("%-66s %12s %12s %-20s %5s %-10s %11s %14s %14s %5s %8s\n", "measure", "mount", "baseline", "baseline is", "ratio", "(min–max)", "daemon CPU", "emulator CPU", "proxy CPU", "busy", "peak RSS")
	for _, m := range ms {
		med, lo, hi := m.ratioFig()
		span := ""
		if med != "" {
			span = lo + "–" + hi
		}
		fmt.Printf("%-66s %12s %12s %-20s %5s %-10s %11s %14s %14s %5s %8s\n", m.what, m.mountFig(), m.baseFig(), m.baseline, med, span, m.cpuFig(), m.emuFig(), m.proxyFig(), m.busyFig(), m.rssFig())
	}
	fmt.Printf("\nREADME rows (%s):\n", title)
	for _, m := range ms {
		med, lo, hi := m.ratioFig()
		var notes []string
		if med != "" {
			notes = append(notes, fmt.Sprintf("%s × %s (%s–%s over %d runs)", med, m.baseline, lo, hi, len(m.samples)))
		}
		if c, r := m.cpuFig(), m.rssFig(); c != "" {
			notes = append(notes, fmt.Sprintf("daemon CPU %s, peak RSS %s", c, r))
		}
		fmt.Printf("| %s | %s | %s |\n", strings.TrimSpace(m.what), m.mountFig(), strings.Join(notes, "; "))
	}
}

// peakRSS is a process's peak resident set (VmHWM), in MiB.
func peakRSS(pid int) float64 { return procStatusMiB(pid, "VmHWM:") }

// procStatusMiB is the field of /proc/PID/status (such as "VmRSS:") in MiB, or -1.
func procStatusMiB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return float64(kb) / 1024
		}
	}
	return -1
}

// resetPeakRSS makes VmHWM start again from the current RSS (Linux 4.0+, the process's owner
// or root), so that the peak of each measure is its own.
func resetPeakRSS(pid int) {
	_ = os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// userHZ is the unit of the CPU times in /proc/PID/stat: USER_HZ, 100 on every Linux ABI.
const userHZ = 100

// cpuSeconds is a process's user + system CPU time so far (all threads).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start with the state, field 3:
	// utime and stime are fields 14 and 15.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return float64(ut+st) / userHZ
}

// machineTicks returns the busy and total CPU time of the whole machine (/proc/stat), in ticks.
func machineTicks() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest times are already in user and nice
			break
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total
}

// onDaemon runs op and returns its duration with the daemon's CPU time and peak RSS during it,
// the emulator's (and g's proxy's) CPU time and how busy the machine was.
func onDaemon(d *daemon, g *gcsProc, op func()) sample {
	pid := d.cmd.Process.Pid
	resetPeakRSS(pid)
	c0, e0, p0 := cpuSeconds(pid), cpuSeconds(g.Pid()), g.proxyCPU()
	b0, t0 := machineTicks()
	start := time.Now()
	op()
	dur := time.Since(start)
	b1, t1 := machineTicks()
	s := sample{mount: dur, cpu: cpuSeconds(pid) - c0, rss: peakRSS(pid), emu: cpuSeconds(g.Pid()) - e0, proxy: -1, busy: -1}
	if p0 >= 0 {
		s.proxy = g.proxyCPU() - p0
	}
	if t1 > t0 {
		s.busy = float64(b1-b0) / float64(t1-t0)
	}
	return s
}

// timed runs a baseline op against the emulator and returns how long it took and the
// emulator's (and g's proxy's) CPU time meanwhile.
func timed(tb testing.TB, g *gcsProc, op func() error) baseRun {
	tb.Helper()
	e0, p0 := cpuSeconds(g.Pid()), g.proxyCPU()
	start := time.Now()
	if err := op(); err != nil {
		tb.Fatal(err)
	}
	r := baseRun{d: time.Since(start), emu: cpuSeconds(g.Pid()) - e0, proxy: -1}
	if p0 >= 0 {
		r.proxy = g.proxyCPU() - p0
	}
	return r
}

// dropCaches empties the kernel's page cache (root only), so that "cold" and "warm" mean
// served by plxfs (from GCS or its disk cache), compared with a local file read from disk.
// The emulator's objects live on tmpfs, which it does not drop.
func dropCaches() {
	unix.Sync()
	_ = os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0)
}

// readAll reads a file sequentially with 1 MiB reads, first dropping cached pages.
func readAll(tb testing.TB, p string) (int64, time.Duration) {
	tb.Helper()
	dropCaches()
	n, d, err := copyOut(p)
	if err != nil {
		tb.Fatal(err)
	}
	return n, d
}

// copyOut reads a file sequentially with 1 MiB reads (its cached pages dropped first, but not
// the whole page cache) and returns the bytes read and how long the reads took.
func copyOut(p string) (int64, time.Duration, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	buf := make([]byte, 1<<20)
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
	return n, time.Since(start), err
}

// randomOffsets are n 4 KiB-aligned offsets in a size-byte file, from seed.
func randomOffsets(size int64, n int, seed uint64) []int64 {
	r := rand.New(rand.NewPCG(seed, 3))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = r.Int64N(size/4096) * 4096
	}
	return offs
}

// randomReads does a 4 KiB pread at each offset (readahead off, cached pages dropped).
func randomReads(tb testing.TB, p string, offs []int64) time.Duration {
	tb.Helper()
	f, err := os.Open(p)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	dropCaches()
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	buf := make([]byte, 4096)
	start := time.Now()
	for _, off := range offs {
		if _, err := f.ReadAt(buf, off); err != nil {
			tb.Fatal(err)
		}
	}
	return time.Since(start)
}

// lsL runs ls -l of dir and checks it printed every entry.
func lsL(tb testing.TB, dir string, entries int) {
	tb.Helper()
	out, err := exec.Command("ls", "-l", dir).Output()
	if err != nil {
		tb.Fatal(err)
	}
	if lines := strings.Count(string(out), "\n"); lines != entries+1 {
		tb.Fatalf("ls -l %s printed %d lines, want %d", dir, lines, entries+1)
	}
}

// readFiles reads files name(0..n-1) below dir with the given number of readers, checking
// each has size bytes.
func readFiles(tb testing.TB, dir string, n, readers, size int, name func(int) string) {
	tb.Helper()
	var next atomic.Int64
	var eg errgroup.Group
	for range readers {
		eg.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				got, err := os.ReadFile(filepath.Join(dir, name(i)))
				if err != nil || len(got) != size {
					return fmt.Errorf("%s: %d bytes, %v", name(i), len(got), err)
				}
			}
		})
	}
	if err := eg.Wait(); err != nil {
		tb.Fatal(err)
	}
}

// getFiles is the baseline of readFiles: the same objects with direct GETs, workers at once.
func getFiles(ctx context.Context, g *gcsProc, bucket string, n, workers int, name func(int) string) error {
	var next atomic.Int64
	var eg errgroup.Group
	for range workers {
		eg.Go(func() error {
			buf := make([]byte, smallSize)
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if _, err := g.get(ctx, bucket, name(i), 0, -1, buf); err != nil {
					return err
				}
			}
		})
	}
	return eg.Wait()
}

// listAll lists prefix completely with the mount's page size and delimiter.
func listAll(ctx context.Context, b store.Bucket, prefix string, want int) error {
	n := 0
	for token, pages := "", 0; pages == 0 || token != ""; pages++ {
		page, err := b.List(ctx, store.ListOptions{Prefix: prefix, Delimiter: "/", PageToken: token, PageSize: mountListPageSize})
		if err != nil {
			return err
		}
		n += len(page.Objects) + len(page.Prefixes)
		token = page.NextPageToken
	}
	if n != want {
		return fmt.Errorf("listed %d entries, want %d", n, want)
	}
	return nil
}

// listOnePage lists prefix in one page of want entries (the emulator serves pages over 1,000).
func listOnePage(ctx context.Context, b store.Bucket, prefix string, want int) error {
	page, err := b.List(ctx, store.ListOptions{Prefix: prefix, Delimiter: "/", PageSize: want})
	if err != nil {
		return err
	}
	if n := len(page.Objects) + len(page.Prefixes); n != want || page.NextPageToken != "" {
		return fmt.Errorf("one page of %d: %d entries, next page %q", want, n, page.NextPageToken)
	}
	return nil
}

// profiler captures a CPU profile of a daemon serving pprof.
type profiler struct {
	addr string // "" when profiling is off
	dir  string
}

// start begins a CPU profile of up to seconds (idle time adds no samples, so a generous window
// costs only waiting) into dir/name.pprof; the returned func waits for it and prints its path.
func (p profiler) start(tb testing.TB, name string, seconds int) func() {
	tb.Helper()
	if p.addr == "" {
		return func() {}
	}
	path := filepath.Join(p.dir, name+".pprof")
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.addr, seconds))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	time.Sleep(200 * time.Millisecond) // the profile has started
	return func() {
		if err := <-done; err != nil {
			tb.Errorf("profile %s: %v", name, err)
			return
		}
		fmt.Printf("CPU profile of the daemon (%s): %s\n", name, path)
	}
}

// readSet is the data BenchmarkMountRead reads, seeded once into one emulator process.
type readSet struct {
	g         *gcsProc // the emulator, direct
	client    *gcs.Client
	conf      benchConf
	local     string // local copy of big.bin
	localDir  string // a local directory like dir/
	randSize  int64
	smallName func(set string) func(int) string
}

const benchBucket = "bench"

// multiReaders is the number of readers, each of its own big object, of the concurrent rows.
const multiReaders = 4

func multiName(i int) string { return fmt.Sprintf("multi/%d.bin", i) }

// shapedSerialFiles bounds the small files read one at a time on a shaped link, where each
// costs a round trip to the server (2,000 would take minutes a run on the slow profile).
const shapedSerialFiles = 400

func serialFiles(link shapeproxy.Link, c benchConf) int {
	if link.Shaped() {
		return min(c.files, shapedSerialFiles)
	}
	return c.files
}

// readMode is a mount mode of the read benchmark: its name and the daemon's flags.
type readMode struct {
	name  string
	flags []string
}

// readModes are the modes measured on loopback; a shaped link measures the first two (the
// default flags and --read-only).
var readModes = []readMode{
	{"read-write", nil},
	{"read-only", []string{"--read-only"}},
	{"read-write --verify-reads", []string{"--verify-reads"}},
}

// BenchmarkMountRead: for each link profile, and for a read-write mount (the default flags), a
// --read-only one and (on loopback) a read-write one with --verify-reads: the cold sequential
// read of the big object (1 GiB), 64 KiB files cold with 8 readers and with one, 4 readers of 4
// big objects at once and, on loopback, ls -l of a cold directory of 10,000 entries, the warm
// re-read, and random 4 KiB reads cold and warm, each with the daemon's CPU time and peak RSS.
func BenchmarkMountRead(b *testing.B) {
	for range b.N {
		benchRead(b)
	}
}

func benchRead(b *testing.B) {
	conf := benchConfig(b)
	g := startGCSProc(b, benchBucket)
	rs := &readSet{g: g, conf: conf, local: filepath.Join(b.TempDir(), "local.bin"), randSize: min(256<<20, conf.big)}
	rs.smallName = func(set string) func(int) string {
		return func(i int) string { return fmt.Sprintf("%s/f%05d", set, i) }
	}
	loopback := slices.ContainsFunc(conf.profiles, func(l shapeproxy.Link) bool { return !l.Shaped() })

	// Seed: the big object (from a local file that stays as the warm baseline), the big objects
	// of the concurrent readers, two sets of small files (8 readers, 1 reader) and, for the
	// loopback rows, the random-read object, the set read after a listing and the listed
	// directory.
	writeRandFile(b, rs.local, conf.big, 1)
	g.putFile(b, benchBucket, "big.bin", rs.local)
	scratch, err := os.MkdirTemp(tmpfsBase(), "plxfs-bench-seed-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(scratch)
	seedFile := func(name string, size int64, seed uint64) {
		p := filepath.Join(scratch, "seed.bin")
		writeRandFile(b, p, size, seed)
		g.putFile(b, benchBucket, name, p)
		os.Remove(p)
	}
	for i := range multiReaders {
		seedFile(multiName(i), conf.big, uint64(10+i))
	}
	sets := []string{"small8", "small1"}
	if loopback {
		seedFile("rand.bin", rs.randSize, 5)
		sets = append(sets, "listed8")
	}
	for _, set := range sets {
		g.putMany(b, benchBucket, conf.files, rs.smallName(set), func(i int) []byte { return genBytes(uint64(i), smallSize) })
	}
	if loopback {
		tiny := make([]byte, 64)
		g.putMany(b, benchBucket, conf.entries, func(i int) string { return fmt.Sprintf("dir/f%05d", i) }, func(i int) []byte { return tiny[:i%64] })
		rs.localDir = filepath.Join(b.TempDir(), "dir")
		os.Mkdir(rs.localDir, 0o755)
		for i := range conf.entries {
			os.WriteFile(filepath.Join(rs.localDir, fmt.Sprintf("f%05d", i)), tiny[:i%64], 0o644)
		}
	}
	client, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: g.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	rs.client = client

	for _, link := range conf.profiles {
		if link.Shaped() {
			rs.benchShaped(b, link)
			continue
		}
		for _, mode := range readModes {
			ms := newReadMeasures(link, mode.name, conf, rs.randSize)
			passthrough := ""
			for run := range conf.runs {
				passthrough = rs.run(b, ms, mode, run)
			}
			title := fmt.Sprintf("plxfs mount, %s (%s): reads; fake-gcs-server in its own process, filesystem backend on tmpfs", mode.name, passthrough)
			printMeasures(title, conf.runs, ms.rows)
			b.ReportMetric(medianOf(ms.coldOne.ratios()), strings.ReplaceAll(mode.name, " ", "")+"-cold-read-ratio")
		}
	}
}

// readMeasures are the rows of one mount mode on one link, rows in the table's order.
type readMeasures struct {
	coldOne, coldFour, coldSixteen, small8, small1, listed8, lsCold, lsOnePage, lsWarm, warm, randCold, randWarm *measure
	multi, multiTotal                                                                                            *measure
	rows                                                                                                         []*measure
}

// sizeLabel prints a size of whole MiB, or GiB.
func sizeLabel(n int64) string {
	if n%(1<<30) == 0 {
		return fmt.Sprintf("%d GiB", n>>30)
	}
	return fmt.Sprintf("%d MiB", n>>20)
}

func newReadMeasures(link shapeproxy.Link, mode string, c benchConf, randSize int64) *readMeasures {
	mib := float64(c.big) / (1 << 20)
	smallBytes := float64(c.files) * smallSize
	serial := serialFiles(link, c)
	big := sizeLabel(c.big)
	p := "mount (" + mode + "): "
	if link.Shaped() {
		p = link.Name + ", " + p
	}
	r := &readMeasures{
		coldOne:     &measure{what: p + "cold sequential read of " + big + ", 1 MiB reads", work: mib, unit: "MiB/s", baseline: "one GET", cpuPer: float64(c.big)},
		coldFour:    &measure{what: p + "  the same, against 4 parallel ranged GETs", work: mib, unit: "MiB/s", baseline: "4 ranged GETs", cpuPer: float64(c.big)},
		coldSixteen: &measure{what: p + "  the same, against 16 parallel ranged GETs", work: mib, unit: "MiB/s", baseline: "16 ranged GETs", cpuPer: float64(c.big)},
		small8:      &measure{what: fmt.Sprintf("%s%d files of 64 KiB, cold, 8 readers", p, c.files), work: float64(c.files), unit: "files/s", baseline: "8 parallel GETs", cpuPer: smallBytes},
		small1:      &measure{what: fmt.Sprintf("%s%d files of 64 KiB, cold, 1 reader", p, serial), work: float64(serial), unit: "files/s", baseline: "serial GETs", cpuPer: float64(serial) * smallSize},
		multi: &measure{what: fmt.Sprintf("%s%d readers of %d files of %s at once, cold", p, multiReaders, multiReaders, big), work: multiReaders * mib, unit: "MiB/s",
			baseline: "16 ranged GETs each", cpuPer: multiReaders * float64(c.big)},
	}
	if link.Shaped() {
		// The best direct client first: the 16-stream read.
		r.coldSixteen.what, r.coldOne.what = r.coldOne.what, p+"  the same, against one GET"
		r.rows = []*measure{r.coldSixteen, r.coldOne, r.coldFour, r.small8, r.small1, r.multi}
		if link.Total > 0 {
			r.multiTotal = &measure{what: fmt.Sprintf("%s  the same, against the link's total of %g MiB/s", p, float64(link.Total)/shapeproxy.MiB), work: multiReaders * mib, unit: "MiB/s",
				baseline: "the link's total", cpuPer: multiReaders * float64(c.big)}
			r.rows = append(r.rows, r.multiTotal)
		}
		return r
	}
	r.listed8 = &measure{what: fmt.Sprintf("%s  the same, names from a listing (ls first, untimed)", p), work: float64(c.files), unit: "files/s", baseline: "8 parallel GETs", cpuPer: smallBytes}
	r.lsCold = &measure{what: fmt.Sprintf("%sls -l of %d entries, cold", p, c.entries), baseline: fmt.Sprintf("listing, %d a page", mountListPageSize)}
	// GCS caps a page at 1,000 entries; the emulator serves any size, and each of its list
	// calls walks the whole bucket, so one big page is far cheaper there than the mount's
	// pages: this row shows that part of the gap is the emulator's, not the mount's.
	r.lsOnePage = &measure{what: p + "  the same, against one page (emulator only)", baseline: "listing in one page"}
	r.lsWarm = &measure{what: fmt.Sprintf("%sls -l of %d entries, warm", p, c.entries), baseline: "local dir"}
	r.warm = &measure{what: p + "warm re-read, page cache dropped", work: mib, unit: "MiB/s", baseline: "local file", cpuPer: float64(c.big)}
	r.randCold = &measure{what: fmt.Sprintf("%srandom 4 KiB reads of %d MiB, cold", p, randSize>>20), work: randomReadsN, unit: "IOPS", baseline: "serial 4 KiB GETs"}
	r.randWarm = &measure{what: fmt.Sprintf("%srandom 4 KiB reads of %d MiB, warm", p, randSize>>20), work: randomReadsN, unit: "IOPS", baseline: "local file"}
	r.rows = []*measure{r.coldOne, r.coldFour, r.coldSixteen, r.small8, r.small1, r.listed8, r.lsCold, r.lsOnePage, r.lsWarm, r.warm, r.randCold, r.randWarm, r.multi}
	return r
}

// startDaemon starts a daemon on a fresh mount with an empty cache of its own against g (the
// emulator, or its view through a proxy). With profile (a run's first daemon), when
// PLXFS_BENCH_PPROF is set, the daemon serves pprof and prof profiles it; otherwise prof does
// nothing. stop ends the daemon and removes its cache.
func (rs *readSet) startDaemon(b *testing.B, g *gcsProc, flags []string, profile bool) (d *daemon, prof profiler, stop func()) {
	args := append([]string{"--cache-size", "4GiB"}, flags...)
	if profile && rs.conf.pprofDir != "" {
		port, err := freePort()
		if err != nil {
			b.Fatal(err)
		}
		prof = profiler{dir: rs.conf.pprofDir, addr: fmt.Sprintf("127.0.0.1:%d", port)}
		args = append(args, "--pprof-addr", prof.addr)
	}
	cacheDir := b.TempDir()
	d = startMount(b, g, mountConf(b, map[string]string{"ds": "gs://" + benchBucket}), filepath.Join(b.TempDir(), "mnt"), cacheDir, args...)
	return d, prof, func() {
		if err := d.stop(); err != nil {
			b.Errorf("stop: %v", err)
		}
		os.RemoveAll(cacheDir) // GiBs: not kept until the benchmark ends
	}
}

// passthroughOf is whether the daemon reported FUSE passthrough on.
func passthroughOf(d *daemon) string {
	if strings.Contains(d.stderr.String(), "FUSE passthrough is on") {
		return "passthrough on"
	}
	return "passthrough off"
}

// getMulti is the baseline of multiRead: the big objects of the concurrent readers at once,
// each with 16 ranged GETs at once.
func (rs *readSet) getMulti(ctx context.Context, g *gcsProc) error {
	var eg errgroup.Group
	for i := range multiReaders {
		eg.Go(func() error {
			_, err := g.getParallel(ctx, benchBucket, multiName(i), rs.conf.big, 16)
			return err
		})
	}
	return eg.Wait()
}

// multiRead reads the big objects of the concurrent readers at once, one reader each, on a
// fresh daemon with an empty cache, the page cache dropped first.
func (rs *readSet) multiRead(b *testing.B, g *gcsProc, flags []string) sample {
	d, _, stop := rs.startDaemon(b, g, flags, false)
	defer stop()
	dropCaches()
	var eg errgroup.Group
	s := onDaemon(d, g, func() {
		for i := range multiReaders {
			eg.Go(func() error {
				p := filepath.Join(d.mnt, "ds", multiName(i))
				n, _, err := copyOut(p)
				if err == nil && n != rs.conf.big {
					err = fmt.Errorf("%s: read %d bytes, want %d", p, n, rs.conf.big)
				}
				return err
			})
		}
		eg.Wait()
	})
	if err := eg.Wait(); err != nil {
		b.Fatal(err)
	}
	return s
}

// run is one run of every loopback read measure on a fresh mount with a fresh cache (and a
// second one for the concurrent readers). It returns whether the daemon reported passthrough
// on.
func (rs *readSet) run(b *testing.B, ms *readMeasures, mode readMode, run int) string {
	conf, g := rs.conf, rs.g
	ctx := context.Background()
	bkt := rs.client.Bucket(benchBucket)
	d, prof, stop := rs.startDaemon(b, g, mode.flags, run == 0)
	passthrough := passthroughOf(d)
	ds := filepath.Join(d.mnt, "ds")
	profSeconds := func(base baseRun) int { return max(5, int(10*base.d.Seconds())+1) }

	// Cold sequential read, against one GET, 4 and 16 ranged GETs of the whole object.
	buf := make([]byte, 1<<20)
	one := timed(b, g, func() error { _, err := g.get(ctx, benchBucket, "big.bin", 0, -1, buf); return err })
	four := timed(b, g, func() error { _, err := g.getParallel(ctx, benchBucket, "big.bin", conf.big, 4); return err })
	sixteen := timed(b, g, func() error { _, err := g.getParallel(ctx, benchBucket, "big.bin", conf.big, 16); return err })
	wait := prof.start(b, mode.name+"-cold-read", profSeconds(one))
	var n int64
	s := onDaemon(d, g, func() { n, _ = readAll(b, filepath.Join(ds, "big.bin")) })
	wait()
	if n != conf.big {
		b.Fatalf("cold read: %d bytes, want %d", n, conf.big)
	}
	ms.coldOne.add(s.with(one))
	ms.coldFour.add(s.with(four))
	ms.coldSixteen.add(s.with(sixteen))

	// Small files, cold, by name (no listing first): 8 readers, then 1.
	dropCaches()
	base := timed(b, g, func() error { return getFiles(ctx, g, benchBucket, conf.files, 8, rs.smallName("small8")) })
	wait = prof.start(b, mode.name+"-small-files-8", profSeconds(base))
	s = onDaemon(d, g, func() { readFiles(b, ds, conf.files, 8, smallSize, rs.smallName("small8")) })
	wait()
	s = s.with(base)
	ms.small8.add(s)
	base = timed(b, g, func() error { return getFiles(ctx, g, benchBucket, conf.files, 1, rs.smallName("small1")) })
	s = onDaemon(d, g, func() { readFiles(b, ds, conf.files, 1, smallSize, rs.smallName("small1")) })
	s = s.with(base)
	ms.small1.add(s)

	// Small files whose names (sizes, generations) came from a listing, as a job that lists
	// its dataset first reads them: the listing is not timed (the baseline is handed the names
	// too). The emulator walks the whole bucket for each listing page, which GCS does not, so
	// the by-name rows above carry that cost; this row does not.
	if _, err := os.ReadDir(filepath.Join(ds, "listed8")); err != nil {
		b.Fatal(err)
	}
	dropCaches()
	base = timed(b, g, func() error { return getFiles(ctx, g, benchBucket, conf.files, 8, rs.smallName("listed8")) })
	s = onDaemon(d, g, func() { readFiles(b, ds, conf.files, 8, smallSize, rs.smallName("listed8")) })
	s = s.with(base)
	ms.listed8.add(s)

	// ls -l of the directory, cold (never looked at by this mount), then warm.
	base = timed(b, g, func() error { return listAll(ctx, bkt, "dir/", conf.entries) })
	onePage := timed(b, g, func() error { return listOnePage(ctx, bkt, "dir/", conf.entries) })
	wait = prof.start(b, mode.name+"-ls-cold", profSeconds(base))
	s = onDaemon(d, g, func() { lsL(b, filepath.Join(ds, "dir"), conf.entries) })
	wait()
	s = s.with(base)
	ms.lsCold.add(s)
	s = s.with(onePage)
	ms.lsOnePage.add(s)
	base = localRun(timed(b, g, func() error { lsL(b, rs.localDir, conf.entries); return nil }).d)
	s = onDaemon(d, g, func() { lsL(b, filepath.Join(ds, "dir"), conf.entries) })
	s = s.with(base)
	ms.lsWarm.add(s)

	// Warm re-read against the local file, both after dropping the page cache. The cache's
	// data, just written, is first flushed and given time to settle on the disk, as the local
	// file (written at setup) had.
	dropCaches()
	time.Sleep(2 * time.Second)
	_, local := readAll(b, rs.local)
	base = localRun(local)
	s = onDaemon(d, g, func() { n, _ = readAll(b, filepath.Join(ds, "big.bin")) })
	s = s.with(base)
	ms.warm.add(s)

	// Random 4 KiB reads: cold against serial 4 KiB ranged GETs at the same offsets, then warm
	// (the same offsets, now cached) against the local file.
	offs := randomOffsets(rs.randSize, randomReadsN, uint64(run)+1)
	base = timed(b, g, func() error {
		small := make([]byte, 4096)
		for _, off := range offs {
			if _, err := g.get(ctx, benchBucket, "rand.bin", off, 4096, small); err != nil {
				return err
			}
		}
		return nil
	})
	s = onDaemon(d, g, func() { randomReads(b, filepath.Join(ds, "rand.bin"), offs) })
	s = s.with(base)
	ms.randCold.add(s)
	base = localRun(randomReads(b, rs.local, offs))
	s = onDaemon(d, g, func() { randomReads(b, filepath.Join(ds, "rand.bin"), offs) })
	s = s.with(base)
	ms.randWarm.add(s)
	stop()

	// Concurrent readers of 4 big objects, on a daemon of their own.
	base = timed(b, g, func() error { return rs.getMulti(ctx, g) })
	ms.multi.add(rs.multiRead(b, g, mode.flags).with(base))
	return passthrough
}

// shapedBase are the direct baselines of one run on a shaped link.
type shapedBase struct {
	one, four, sixteen, small8, small1, multi baseRun
	total                                     baseRun // the concurrent readers' bytes at the link's total bandwidth
}

// benchShaped runs the read measures on a shaped link: the shaping proxy in its own process in
// front of the emulator, the daemon's endpoint and the baselines' both the proxy. Each run
// measures the baselines, then each mode on a fresh daemon.
func (rs *readSet) benchShaped(b *testing.B, link shapeproxy.Link) {
	conf := rs.conf
	sp := startShapeProc(b, rs.g, link)
	g := rs.g.through(sp)
	modes := readModes[:2]
	ms := make([]*readMeasures, len(modes))
	passthrough := make([]string, len(modes))
	for i, m := range modes {
		ms[i] = newReadMeasures(link, m.name, conf, rs.randSize)
	}
	for run := range conf.runs {
		base := rs.shapedBaselines(b, g, link)
		for i, mode := range modes {
			passthrough[i] = rs.runShaped(b, g, ms[i], base, mode, run)
		}
	}
	cpu, down := sp.stop()
	for i, mode := range modes {
		title := fmt.Sprintf("plxfs mount, %s (%s), link %s: reads; fake-gcs-server and shapeproxy each in its own process", mode.name, passthrough[i], link)
		printMeasures(title, conf.runs, ms[i].rows)
		b.ReportMetric(medianOf(ms[i].coldSixteen.ratios()), link.Name+"-"+strings.ReplaceAll(mode.name, " ", "")+"-cold-read-ratio")
	}
	fmt.Println(proxyCost(link, cpu, down))
}

// shapedBaselines measures one run's direct baselines through g's proxy, each starting with no
// connection open, as a fresh daemon does.
func (rs *readSet) shapedBaselines(b *testing.B, g *gcsProc, link shapeproxy.Link) shapedBase {
	conf := rs.conf
	ctx := context.Background()
	cold := func(op func() error) baseRun {
		g.client.CloseIdleConnections()
		return timed(b, g, op)
	}
	buf := make([]byte, 1<<20)
	var r shapedBase
	r.one = cold(func() error { _, err := g.get(ctx, benchBucket, "big.bin", 0, -1, buf); return err })
	r.four = cold(func() error { _, err := g.getParallel(ctx, benchBucket, "big.bin", conf.big, 4); return err })
	r.sixteen = cold(func() error { _, err := g.getParallel(ctx, benchBucket, "big.bin", conf.big, 16); return err })
	r.small8 = cold(func() error { return getFiles(ctx, g, benchBucket, conf.files, 8, rs.smallName("small8")) })
	r.small1 = cold(func() error {
		return getFiles(ctx, g, benchBucket, serialFiles(link, conf), 1, rs.smallName("small1"))
	})
	r.multi = cold(func() error { return rs.getMulti(ctx, g) })
	r.total = baseRun{emu: -1, proxy: -1}
	if link.Total > 0 {
		r.total.d = time.Duration(float64(multiReaders*conf.big) / float64(link.Total) * float64(time.Second))
	}
	return r
}

// runShaped is one run of one mode's measures on a shaped link, on a fresh mount with a fresh
// cache (and a second one for the concurrent readers). It returns whether the daemon reported
// passthrough on.
func (rs *readSet) runShaped(b *testing.B, g *gcsProc, ms *readMeasures, base shapedBase, mode readMode, run int) string {
	conf := rs.conf
	d, prof, stop := rs.startDaemon(b, g, mode.flags, run == 0)
	passthrough := passthroughOf(d)
	ds := filepath.Join(d.mnt, "ds")

	// Cold sequential read. The profile's window covers a read as slow as one GET.
	wait := prof.start(b, g.proxy.link.Name+"-"+mode.name+"-cold-read", int(base.one.d.Seconds())+2)
	var n int64
	s := onDaemon(d, g, func() { n, _ = readAll(b, filepath.Join(ds, "big.bin")) })
	wait()
	if n != conf.big {
		b.Fatalf("cold read: %d bytes, want %d", n, conf.big)
	}
	ms.coldSixteen.add(s.with(base.sixteen))
	ms.coldOne.add(s.with(base.one))
	ms.coldFour.add(s.with(base.four))

	// Small files, cold, by name: 8 readers, then 1.
	dropCaches()
	s = onDaemon(d, g, func() { readFiles(b, ds, conf.files, 8, smallSize, rs.smallName("small8")) })
	ms.small8.add(s.with(base.small8))
	s = onDaemon(d, g, func() { readFiles(b, ds, serialFiles(g.proxy.link, conf), 1, smallSize, rs.smallName("small1")) })
	ms.small1.add(s.with(base.small1))
	stop()

	// Concurrent readers of 4 big objects, on a daemon of their own.
	s = rs.multiRead(b, g, mode.flags)
	ms.multi.add(s.with(base.multi))
	if ms.multiTotal != nil {
		ms.multiTotal.add(s.with(base.total))
	}
	return passthrough
}

// writeRandFile writes size pseudo-random bytes (from seed) to p, 64 MiB at a time.
func writeRandFile(tb testing.TB, p string, size int64, seed uint64) {
	tb.Helper()
	f, err := os.Create(p)
	if err != nil {
		tb.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 2))
	block := make([]byte, min(64<<20, size))
	for w := int64(0); w < size; w += int64(len(block)) {
		part := block[:min(int64(len(block)), size-w)]
		fillRand(r, part)
		if _, err := f.Write(part); err != nil {
			tb.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkMountWrite: on a read-write mount, a sequential write of the big file and its close
// against a direct upload of the same size with the daemon's upload options, the time close
// takes, and 1,000 small files created; each with the daemon's CPU time and peak RSS.
func BenchmarkMountWrite(b *testing.B) {
	for range b.N {
		benchWrite(b)
	}
}

func benchWrite(b *testing.B) {
	conf := benchConfig(b)
	g := startGCSProc(b, benchBucket)
	local := filepath.Join(b.TempDir(), "local.bin")
	writeRandFile(b, local, conf.big, 7)
	block := make([]byte, 64<<20)
	ctx := context.Background()
	client, err := gcs.NewClient(ctx, gcs.Options{Endpoint: g.URL()})
	if err != nil {
		b.Fatal(err)
	}
	defer client.Close()
	// The daemon's default upload options, for the direct baseline too.
	opts := transfer.Options{ChunkSize: 8 << 20, ComposeThreshold: 64 << 20, PartSize: 32 << 20, Workers: 4, Owner: "bench"}
	mib := float64(conf.big) / (1 << 20)
	const smallN = 1000
	p := "mount (read-write): "
	seq := &measure{what: fmt.Sprintf("%ssequential write of %s + close", p, sizeLabel(conf.big)), work: mib, unit: "MiB/s", baseline: "direct upload", cpuPer: float64(conf.big)}
	writes := &measure{what: p + "  of which write() calls", cpuPer: float64(conf.big)}
	closes := &measure{what: p + "  of which close()", cpuPer: float64(conf.big)}
	small := &measure{what: fmt.Sprintf("%s%d files of 4 KiB created and closed", p, smallN), work: smallN, unit: "files/s", baseline: "serial uploads"}

	for run := range conf.runs {
		direct := fmt.Sprintf("direct-%d.bin", run)
		src, err := os.Open(local)
		if err != nil {
			b.Fatal(err)
		}
		base := timed(b, g, func() error {
			_, err := transfer.Upload(ctx, client.Bucket(benchBucket), direct, src, conf.big, store.WriteOptions{}, opts)
			return err
		})
		src.Close()
		g.delete(b, benchBucket, direct)
		smallBase := timed(b, g, func() error {
			for i := range smallN {
				if err := g.put(benchBucket, fmt.Sprintf("direct-small-%d/f%04d", run, i), bytes.NewReader(block[:4096]), 4096); err != nil {
					return err
				}
			}
			return nil
		})

		mnt := filepath.Join(b.TempDir(), "mnt")
		d := startMount(b, g, mountConf(b, map[string]string{"ds": "gs://" + benchBucket}), mnt, b.TempDir(), "--cache-size", "4GiB")
		ds := filepath.Join(mnt, "ds")
		name := fmt.Sprintf("big-%d.bin", run)
		f, err := os.Create(filepath.Join(ds, name))
		if err != nil {
			b.Fatal(err)
		}
		lf, err := os.Open(local)
		if err != nil {
			b.Fatal(err)
		}
		var wrote time.Duration
		total := onDaemon(d, g, func() {
			start := time.Now()
			if _, err := io.CopyBuffer(struct{ io.Writer }{f}, struct{ io.Reader }{lf}, block); err != nil {
				b.Fatal(err)
			}
			wrote = time.Since(start)
			if err := f.Close(); err != nil {
				b.Fatal(err)
			}
		})
		lf.Close()
		total = total.with(base)
		seq.add(total)
		// The costs are the whole's.
		writes.add(sample{mount: wrote, cpu: -1, rss: -1, emu: -1, proxy: -1, busy: -1})
		closes.add(sample{mount: total.mount - wrote, cpu: -1, rss: -1, emu: -1, proxy: -1, busy: -1})

		dir := filepath.Join(ds, fmt.Sprintf("small-%d", run))
		if err := os.Mkdir(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		s := onDaemon(d, g, func() {
			for i := range smallN {
				if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%04d", i)), block[:4096], 0o644); err != nil {
					b.Fatal(err)
				}
			}
		})
		s = s.with(smallBase)
		small.add(s)
		if err := d.stop(); err != nil {
			b.Errorf("stop: %v", err)
		}
		g.delete(b, benchBucket, name) // tmpfs is memory: one big object at a time
	}
	printMeasures("plxfs mount, read-write: writes; fake-gcs-server in its own process, filesystem backend on tmpfs", conf.runs, []*measure{seq, writes, closes, small})
	b.ReportMetric(medianOf(seq.ratios()), "write-ratio")
}
