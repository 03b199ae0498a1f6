package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/internal/emulator"
)

// scrapeMetrics fetches and parses the daemon's /metrics.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := fetchMetrics(url)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// fetchMetrics is scrapeMetrics for goroutines other than the test's: it returns the error.
func fetchMetrics(url string) (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", url, err)
	}
	return mfs, nil
}

// metric is the value of the series name{labels} ("k", "v", ...) in mfs: a counter's or
// gauge's value, a histogram's sample count; 0 when absent.
func metric(mfs map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	mf := mfs[name]
	if mf == nil {
		return 0
	}
	for _, m := range mf.GetMetric() {
		ok := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
		}
	}
	return 0
}

// daemonURL waits for the daemon to log "msg ... url=URL" and returns URL.
func daemonURL(t *testing.T, d *daemon, msg string) string {
	t.Helper()
	re := regexp.MustCompile(`msg="?` + regexp.QuoteMeta(msg) + `"? url=(\S+)`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if m := re.FindStringSubmatch(d.stderr.String()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon never logged %q with a url (is --metrics-addr/--pprof-addr wired into plxfs mount?):\n%s", msg, d.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// readUncached reads the whole file through FUSE: it first drops the kernel's cached pages of
// the file (posix_fadvise DONTNEED), so that the read reaches the daemon.
func readUncached(t *testing.T, p string) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise: %v", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return b
}

// TestMetricsAndStatusMatchTheWork mounts with --metrics-addr and --pprof-addr, reads a file
// twice and writes one, and checks that the counters and `plxfs status` agree with that work:
// GCS delivers the file's bytes once, the re-read is served by the cache.
func TestMetricsAndStatusMatchTheWork(t *testing.T) {
	em := startEmulator(t, emulator.Options{Buckets: []string{"metrics-bkt"}})
	const size = 5<<20 + 123 // three 2 MiB chunks, the last one short
	data := genBytes(42, size)
	if err := em.PutObject("metrics-bkt", "data/file.bin", data, ""); err != nil {
		t.Fatal(err)
	}
	if err := em.PutObject("metrics-bkt", "data/sub/keep.txt", []byte("k"), ""); err != nil {
		t.Fatal(err)
	}
	conf := mountConf(t, map[string]string{"ds": "gs://metrics-bkt/data"})
	mnt := filepath.Join(t.TempDir(), "mnt")
	// Passthrough off: the re-read must reach the daemon to be counted (TestPassthrough
	// covers re-reads the kernel serves itself).
	d := startMount(t, em, conf, mnt, t.TempDir(), "--passthrough=false",
		"--chunk-size", "2MiB", "--metrics-addr", "127.0.0.1:0", "--pprof-addr", "127.0.0.1:0")
	metricsURL := daemonURL(t, d, "serving metrics")
	file := filepath.Join(mnt, "ds", "file.bin")

	// First read: every byte comes from GCS, once.
	if got := readUncached(t, file); !bytes.Equal(got, data) {
		t.Fatalf("first read: %d bytes, not the object", len(got))
	}
	m1 := scrapeMetrics(t, metricsURL)
	for _, c := range []struct {
		name string
		want float64
	}{
		{"plxfs_gcs_read_bytes_total", size},
		{"plxfs_cache_fetched_bytes_total", size},
		{"plxfs_fuse_read_bytes_total", size},
		{"plxfs_cache_served_bytes_total", size},
	} {
		if got := metric(m1, c.name); got != c.want {
			t.Errorf("after the first read: %s = %v, want %v", c.name, got, c.want)
		}
	}
	reads1 := metric(m1, "plxfs_gcs_requests_total", "method", "Read", "code", "ok")
	if reads1 < 3 {
		t.Errorf("GCS Read requests %v for three chunks", reads1)
	}
	if metric(m1, "plxfs_fuse_operations_total", "op", "read") == 0 || metric(m1, "plxfs_fuse_operation_duration_seconds", "op", "read") == 0 {
		t.Error("no FUSE read operations (or no latency samples) recorded")
	}

	// Re-read: the kernel's pages are dropped, so FUSE serves it again, from the disk cache.
	if got := readUncached(t, file); !bytes.Equal(got, data) {
		t.Fatalf("re-read: %d bytes, not the object", len(got))
	}
	m2 := scrapeMetrics(t, metricsURL)
	if got := metric(m2, "plxfs_fuse_read_bytes_total"); got != 2*size {
		t.Fatalf("fuse read bytes %v after two reads, want %v (did the re-read reach the daemon?)", got, 2*size)
	}
	if got := metric(m2, "plxfs_gcs_read_bytes_total"); got != size {
		t.Errorf("GCS read bytes %v after the re-read, want still %v", got, size)
	}
	if got := metric(m2, "plxfs_gcs_requests_total", "method", "Read", "code", "ok"); got != reads1 {
		t.Errorf("GCS Read requests %v after the re-read, want still %v", got, reads1)
	}
	if got, was := metric(m2, "plxfs_cache_served_bytes_total"), metric(m1, "plxfs_cache_served_bytes_total"); got != was+size {
		t.Errorf("cache served bytes %v after the re-read, want %v", got, was+size)
	}
	if got, was := metric(m2, "plxfs_cache_hits_total"), metric(m1, "plxfs_cache_hits_total"); got <= was {
		t.Errorf("cache hits %v after the re-read, were %v", got, was)
	}
	if metric(m2, "plxfs_cache_bytes") < size || metric(m2, "plxfs_cache_chunks") != 3 {
		t.Errorf("cache holds %v bytes in %v chunks, want >= %d in 3", metric(m2, "plxfs_cache_bytes"), metric(m2, "plxfs_cache_chunks"), size)
	}

	// A missing name is a lookup answered ENOENT; removing a non-empty directory, ENOTEMPTY.
	if _, err := os.Stat(filepath.Join(mnt, "ds", "missing")); !os.IsNotExist(err) {
		t.Fatalf("stat missing: %v", err)
	}
	if err := os.Remove(filepath.Join(mnt, "ds", "sub")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
	}
	// A write is one upload of its bytes.
	payload := bytes.Repeat([]byte("x"), 1000)
	if err := os.WriteFile(filepath.Join(mnt, "ds", "out.txt"), payload, 0o644); err != nil {
		t.Fatal(err)
	}
	if obj, err := em.GetObject("metrics-bkt", "data/out.txt"); err != nil || !bytes.Equal(obj.Content, payload) {
		t.Fatalf("the written file is not in the bucket after close: %v", err)
	}
	m3 := scrapeMetrics(t, metricsURL)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"plxfs_uploads_total", nil, 1},
		{"plxfs_upload_bytes_total", nil, 1000},
		{"plxfs_upload_failures_total", nil, 0},
		{"plxfs_uploads_in_flight", nil, 0},
		{"plxfs_fuse_write_bytes_total", nil, 1000},
		{"plxfs_gcs_write_bytes_total", nil, 1000},
	} {
		if got := metric(m3, c.name, c.labels...); got != c.want {
			t.Errorf("after writing 1000 bytes: %s = %v, want %v", c.name, got, c.want)
		}
	}
	if metric(m3, "plxfs_gcs_requests_total", "method", "Write", "code", "ok") < 1 {
		t.Error("no successful GCS Write request recorded for the upload")
	}
	if metric(m3, "plxfs_fuse_errors_total", "op", "lookup", "errno", "ENOENT") < 1 {
		t.Error("the failed lookup is not in plxfs_fuse_errors_total{op=lookup,errno=ENOENT}")
	}
	if got := metric(m3, "plxfs_fuse_errors_total", "op", "rmdir", "errno", "ENOTEMPTY"); got != 1 {
		t.Errorf("plxfs_fuse_errors_total{op=rmdir,errno=ENOTEMPTY} = %v, want 1", got)
	}
	// Open handles drop back to 0 once the kernel releases the files (asynchronously).
	for deadline := time.Now().Add(10 * time.Second); metric(scrapeMetrics(t, metricsURL), "plxfs_open_handles") != 0; {
		if time.Now().After(deadline) {
			t.Fatal("plxfs_open_handles did not return to 0 after every file was closed")
		}
		time.Sleep(50 * time.Millisecond)
	}

	// pprof answers on its own address.
	resp, err := http.Get(daemonURL(t, d, "serving pprof") + "goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	prof, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(prof, []byte("goroutine profile")) {
		t.Errorf("pprof goroutine profile: %s\n%.200s", resp.Status, prof)
	}

	// A file replaced behind the mount while open fails to read; the warning the daemon logs
	// is among the recent errors that plxfs status shows.
	if err := em.PutObject("metrics-bkt", "data/gone.bin", []byte("old bytes"), ""); err != nil {
		t.Fatal(err)
	}
	gone, err := os.Open(filepath.Join(mnt, "ds", "gone.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if err := em.PutObject("metrics-bkt", "data/gone.bin", []byte("new bytes"), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(gone); err == nil {
		t.Fatal("reading a generation replaced behind the mount succeeded")
	}
	gone.Close()

	// plxfs status finds the daemon from the mountpoint alone.
	res := runPlxfs(t, nil, "status", mnt)
	res0 := res
	if res.Code != 0 {
		t.Fatalf("plxfs status: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
	for _, want := range []string{
		"serving " + mnt,
		"ds", "gs://metrics-bkt/data/", "credentials: none (emulator)",
		"5.0 MiB downloaded from GCS",
		"0 in flight",
		"1 done (1000 B), 0 failed",
	} {
		if !strings.Contains(res.Stdout, want) {
			t.Errorf("plxfs status lacks %q:\n%s", want, res.Stdout)
		}
	}
	res = runPlxfs(t, nil, "status", "--output", "json", mnt)
	var st control.Status
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		t.Fatalf("plxfs status --output json: %v\n%s%s", err, res.Stdout, res.Stderr)
	}
	if st.PID != d.cmd.Process.Pid || st.Mountpoint != mnt || len(st.Connections) != 1 ||
		st.Connections[0].Bucket != "metrics-bkt" || st.Connections[0].Prefix != "data/" {
		t.Errorf("status identity/connections: %+v", st)
	}
	// The cache figures agree with the metrics (the written file's chunk was added by then).
	m4 := scrapeMetrics(t, metricsURL)
	if st.Cache.GCSReadBytes != size || st.Cache.ServedBytes != 2*size || st.Cache.HitRatio <= 0 ||
		float64(st.Cache.Chunks) != metric(m4, "plxfs_cache_chunks") || float64(st.Cache.Bytes) != metric(m4, "plxfs_cache_bytes") ||
		float64(st.Cache.Hits) != metric(m4, "plxfs_cache_hits_total") || float64(st.Cache.MaxBytes) != metric(m4, "plxfs_cache_max_bytes") {
		t.Errorf("status cache figures %+v, want %d bytes from GCS, %d served, and chunks/bytes/hits/max as in the metrics", st.Cache, size, 2*size)
	}
	if st.Uploads.Done != 1 || st.Uploads.Bytes != 1000 || st.Uploads.InFlight != 0 {
		t.Errorf("status uploads %+v, want 1 done of 1000 bytes", st.Uploads)
	}
	found := false
	for _, r := range st.RecentErrors {
		attrs := map[string]string{}
		for _, a := range r.Attrs {
			attrs[a.Key] = a.Value
		}
		if attrs["connection"] == "ds" && strings.Contains(attrs["path"], "gone.bin") {
			found = true
		}
	}
	if !found || st.ErrorsLogged < 1 {
		t.Errorf("status recent errors lack the failed read of gone.bin (connection ds): %+v", st.RecentErrors)
	}
	if !strings.Contains(res0.Stdout, "recent warnings and errors") || !strings.Contains(res0.Stdout, "gone.bin") {
		t.Errorf("plxfs status text lacks the recent errors:\n%s", res0.Stdout)
	}

	// Once the daemon is gone, status says so and exits 1.
	if err := d.stop(); err != nil {
		t.Fatalf("daemon exit: %v\n%s", err, d.stderr.String())
	}
	res = runPlxfs(t, nil, "status", mnt)
	if res.Code != 1 || !strings.Contains(res.Stderr, "is plxfs mounted there?") {
		t.Errorf("plxfs status after unmount: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// --debug-fuse traces FUSE requests on stderr; --status-socket moves the socket on both sides.
func TestDebugFuseAndStatusSocketFlag(t *testing.T) {
	em := startEmulator(t, emulator.Options{Buckets: []string{"dbg-bkt"}})
	if err := em.PutObject("dbg-bkt", "a.txt", []byte("hello"), ""); err != nil {
		t.Fatal(err)
	}
	sockDir, err := os.MkdirTemp("", "pxs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	sock := filepath.Join(sockDir, "plxfs.sock")
	mnt := filepath.Join(t.TempDir(), "mnt")
	d := startMount(t, em, mountConf(t, map[string]string{"dbg": "gs://dbg-bkt"}), mnt, t.TempDir(),
		"--debug-fuse", "--status-socket", sock)
	if b, err := os.ReadFile(filepath.Join(mnt, "dbg", "a.txt")); err != nil || string(b) != "hello" {
		t.Fatalf("read through the mount: %q, %v", b, err)
	}
	if log := d.stderr.String(); !strings.Contains(log, "LOOKUP") || !strings.Contains(log, "READ") {
		t.Errorf("--debug-fuse: no LOOKUP/READ trace in the daemon's stderr:\n%.2000s", log)
	}
	if res := runPlxfs(t, nil, "status", mnt); res.Code != 1 {
		t.Errorf("status without --status-socket found a daemon that listens elsewhere: exit %d", res.Code)
	}
	res := runPlxfs(t, nil, "status", "--status-socket", sock, mnt)
	if res.Code != 0 || !strings.Contains(res.Stdout, "gs://dbg-bkt/") {
		t.Errorf("status --status-socket: exit %d\n%s%s", res.Code, res.Stdout, res.Stderr)
	}
}
