package integration

import (
	"crypto/sha256"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
)

// TestMountMemoryBudgetEightReaders: eight readers stream eight different 64 MiB files through
// one default mount at once, each with a full prefetch window to fill (readahead 8 chunks of
// 8 MiB: 512 MiB if nothing bounded it). The daemon's resident memory, sampled while they
// read, stays within the prefetch budget (32 MiB of chunk buffers) plus the daemon's own
// (binary and Go heap), and every byte is right.
func TestMountMemoryBudgetEightReaders(t *testing.T) {
	const (
		readers = 8
		size    = 64 << 20
		bound   = 160 // MiB: ~40 binary, ≤ 60 soft Go heap limit, 32 budget, and some slack
	)
	srv := startEmulator(t, emulator.Options{Backend: "filesystem", Buckets: []string{"mem-bkt"}})
	sums := make([][sha256.Size]byte, readers)
	for i := range readers {
		data := genBytes(uint64(100+i), size)
		sums[i] = sha256.Sum256(data)
		if err := srv.PutObject("mem-bkt", fmt.Sprintf("f%d.bin", i), data, ""); err != nil {
			t.Fatal(err)
		}
	}
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := startMount(t, srv, mountConf(t, map[string]string{"ds": "gs://mem-bkt"}), mnt, t.TempDir())
	pid := d.cmd.Process.Pid
	resetPeakRSS(pid)

	stop := make(chan struct{})
	sampled := make(chan float64)
	go func() {
		peak := 0.0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				sampled <- max(peak, peakRSS(pid))
				return
			case <-tick.C:
				peak = max(peak, peakRSS(pid))
			}
		}
	}()
	var wg sync.WaitGroup
	errs := make([]error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = readSHA(filepath.Join(mnt, "ds", fmt.Sprintf("f%d.bin", i)), size, sums[i])
		}()
	}
	wg.Wait()
	close(stop)
	peak := <-sampled
	for i, err := range errs {
		if err != nil {
			t.Errorf("reader %d: %v", i, err)
		}
	}
	t.Logf("%d readers × %d MiB at once: daemon peak RSS %.0f MiB (bound %d MiB)", readers, size>>20, peak, bound)
	if peak <= 0 || peak > bound {
		t.Fatalf("daemon peak RSS %.0f MiB while %d readers streamed, want at most %d MiB", peak, readers, bound)
	}
}
