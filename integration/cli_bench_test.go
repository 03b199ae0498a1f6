package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// BenchmarkCLIMemory (run by `make bench`) measures the peak resident set of the storage
// commands, each run of the built binary in its own process against the emulator: uploads
// and downloads of one 1 GiB file and of 2,000 small files, and `init` of both, with the
// default flags and with --workers 2. The sidecar manifests give plxfs 256Mi; the target is
// at most 100 MiB for any size with the default flags. $PLXFS_BENCH_BIG overrides the big
// file's size in MiB (for a quick look).
func BenchmarkCLIMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		benchCLIMemory(b)
	}
}

func benchCLIMemory(b *testing.B) {
	big := int64(1 << 30)
	if s := os.Getenv("PLXFS_BENCH_BIG"); s != "" {
		var mib int64
		if _, err := fmt.Sscan(s, &mib); err != nil || mib <= 0 {
			b.Fatalf("PLXFS_BENCH_BIG=%q: want a size in MiB", s)
		}
		big = mib << 20
	}
	srv, err := emulator.Start(emulator.Options{Backend: "filesystem", Buckets: []string{"bench"}})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Stop()
	work := b.TempDir()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if work, err = os.MkdirTemp("/dev/shm", "plxfs-clibench-"); err != nil {
			b.Fatal(err)
		}
		defer os.RemoveAll(work)
	}
	local := filepath.Join(work, "up")
	if err := os.MkdirAll(filepath.Join(local, "small"), 0o755); err != nil {
		b.Fatal(err)
	}
	writeRandomFile(b, filepath.Join(local, "big.bin"), 1, big)
	buf := make([]byte, 64<<10)
	for i := range 2000 {
		fillRand(rand.New(rand.NewPCG(uint64(i), 7)), buf)
		if err := os.WriteFile(filepath.Join(local, "small", fmt.Sprintf("f%04d", i)), buf, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	bigLabel := fmt.Sprintf("%d MiB", big>>20)
	conf := mountConf(b, map[string]string{"ds": "gs://bench"})
	common := []string{"--config", conf, "--endpoint", srv.URL(), "--quiet"}

	type row struct {
		what string
		args []string
	}
	var rows []row
	for _, w := range []struct{ label, flag string }{{"default flags", ""}, {"--workers 2", "--workers=2"}} {
		extra := func(args ...string) []string {
			if w.flag != "" {
				args = append(args, w.flag)
			}
			return args
		}
		dl := filepath.Join(work, "down")
		in := filepath.Join(work, "init")
		rows = append(rows,
			row{"upload " + bigLabel + " file, " + w.label, extra("upload", "--force", filepath.Join(local, "big.bin"), "ds:")},
			row{"upload 2,000 × 64 KiB, " + w.label, extra("upload", "-r", "--force", filepath.Join(local, "small"), "ds:")},
			row{"download " + bigLabel + " file, " + w.label, extra("download", "--force", "ds:big.bin", dl)},
			row{"download 2,000 × 64 KiB, " + w.label, extra("download", "-r", "--force", "ds:small", dl)},
			row{"init " + bigLabel + " file + 2,000 × 64 KiB, " + w.label, extra("init", "--connection", "ds", "--files", "big.bin", "--dirs", "small", "--path", in)},
		)
		rows = append(rows, row{"", []string{"rm-local", dl, in}})
	}
	fmt.Printf("\nplxfs storage commands: peak RSS of the process (VmHWM)\n%-52s %10s %10s\n", "command", "peak RSS", "time")
	for _, r := range rows {
		if r.args[0] == "rm-local" {
			for _, d := range r.args[1:] {
				os.RemoveAll(d)
			}
			continue
		}
		args := append(append([]string{r.args[0]}, common...), r.args[1:]...)
		rss, d := measurePeakRSS(b, args...)
		fmt.Printf("%-52s %7.0f MiB %10s\n", r.what, rss, d.Round(10*time.Millisecond))
	}
}

// writeRandomFile writes n reproducible pseudo-random bytes to path, 1 MiB at a time.
func writeRandomFile(tb testing.TB, path string, seed uint64, n int64) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(seed, ^seed))
	buf := make([]byte, 1<<20)
	for n > 0 {
		k := min(n, int64(len(buf)))
		fillRand(rng, buf[:k])
		if _, err := f.Write(buf[:k]); err != nil {
			tb.Fatal(err)
		}
		n -= k
	}
}

// measurePeakRSS runs the binary to completion and returns its peak resident set in MiB: the
// last (highest) VmHWM read from /proc/PID/status while it ran, every 20 ms. (rusage.Maxrss
// is no substitute: a child forked with CLONE_VM records its parent's high-water mark at exec.)
func measurePeakRSS(tb testing.TB, args ...string) (float64, time.Duration) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, plxfsBin, args...)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	peak := 0.0
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			d := time.Since(start)
			if err != nil {
				tb.Fatalf("plxfs %v: %v\n%s", args, err, errb.String())
			}
			return peak, d
		case <-tick.C:
			peak = max(peak, peakRSS(cmd.Process.Pid))
		}
	}
}
