package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/metrics"
)

// syncBuffer is a bytes.Buffer safe for the logger and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// shortDir is a private directory with a short path (unix socket paths are limited to 107 bytes).
func shortDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pxo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return string(b)
}

// loggedURL finds the url= of the log line with msg.
func loggedURL(t *testing.T, log, msg string) string {
	t.Helper()
	m := regexp.MustCompile(`msg="` + msg + `" url=(\S+)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("no %q line with a url in the log:\n%s", msg, log)
	}
	return m[1]
}

// The daemon side (metrics, pprof, status socket at the default path) against the client
// side (plxfs status without flags), as a mount uses them.
func TestObservabilityServesMetricsPprofAndStatus(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", shortDir(t))
	mnt := filepath.Join(t.TempDir(), "mnt")
	var logBuf syncBuffer
	rt := &runtime{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	ring := captureErrors(rt)
	m := metrics.New()
	m.Registry().MustRegister(metrics.NewCacheCollector(func() cache.Stats { return cache.Stats{Hits: 3, Misses: 1, Bytes: 8192, Chunks: 2} }, 1<<30))
	m.UploadStarted()
	m.CacheServed(5000)
	m.ChecksumMismatch()
	m.StorageCounters().OutcomeChecked(true)
	m.StorageCounters().Hedged()
	m.StorageCounters().Hedged()
	src := &statusSource{
		Mountpoint:  mnt,
		Started:     time.Now().Add(-time.Hour),
		Connections: []control.Connection{{Name: "ds1", Bucket: "bkt", Prefix: "data/", Credentials: "none (emulator)"}},
		CacheDir:    "/var/cache/plxfs",
		CacheMax:    1 << 30,
		CacheStats:  func() cache.Stats { return cache.Stats{Hits: 3, Misses: 1, Bytes: 8192, Chunks: 2} },
		Metrics:     m,
		Errors:      ring,
		Pending:     func() int { return 2 },
	}
	rt.Logger().Warn("upload failed; the file stays staged", "connection", "ds1", "path", "a/b.txt")

	stop, err := startObservability(context.Background(), rt, observeOptions{
		MetricsAddr: "127.0.0.1:0", PprofAddr: "127.0.0.1:0", Mountpoint: mnt, Metrics: m, Status: src.Status,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()

	text := httpGet(t, loggedURL(t, logBuf.String(), "serving metrics"))
	for _, line := range []string{"plxfs_uploads_in_flight 1", "plxfs_cache_hits_total 3", "plxfs_cache_served_bytes_total 5000",
		"plxfs_checksum_mismatch_total 1", `plxfs_upload_outcome_checked_total{result="landed"} 1`, "plxfs_hedged_requests_total 2"} {
		if !strings.Contains(text, "\n"+line+"\n") {
			t.Errorf("metrics lack %q", line)
		}
	}
	if idx := httpGet(t, loggedURL(t, logBuf.String(), "serving pprof")); !strings.Contains(idx, "goroutine") {
		t.Errorf("pprof index lacks the goroutine profile:\n%s", idx)
	}

	code, out, errOut := runCLI(t, "status", mnt)
	if code != 0 {
		t.Fatalf("plxfs status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"serving " + mnt,
		"ds1", "gs://bkt/data/", "credentials: none (emulator)",
		"8.0 KiB of 1.0 GiB", "2 chunks", "75.0% hit ratio (3 hits, 1 misses)",
		"4.9 KiB served",
		"1 in flight, 2 files pending",
		"1 checksum mismatches, 1 upload outcomes checked (1 landed), 2 requests hedged, 0 stalled calls failed",
		`upload failed; the file stays staged connection=ds1 path=a/b.txt`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI(t, "status", "--output", "json", mnt)
	if code != 0 {
		t.Fatalf("plxfs status --output json: exit %d: %s", code, errOut)
	}
	var st control.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	if st.PID != os.Getpid() || st.Mountpoint != mnt || st.Cache.HitRatio != 0.75 || st.Uploads.InFlight != 1 ||
		len(st.RecentErrors) != 1 || st.RecentErrors[0].Level != "WARN" ||
		st.Integrity != (control.Integrity{ChecksumMismatches: 1, UploadOutcomesChecked: 1, UploadOutcomesLanded: 1, HedgedRequests: 2}) {
		t.Errorf("status JSON = %+v", st)
	}

	stop()
	stop() // idempotent
	code, _, errOut = runCLI(t, "status", mnt)
	if code != 1 || !strings.Contains(errOut, "is plxfs mounted there?") {
		t.Errorf("status after stop: exit %d, stderr %q; want 1 and the hint", code, errOut)
	}
}

func TestStatusUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"status"}, 2, "status takes one MOUNTPOINT"},
		{[]string{"status", "--output", "yaml", "/mnt"}, 2, "--output \"yaml\": use text or json"},
		{[]string{"status", "--status-socket", "/nonexistent/s.sock", "/mnt"}, 1, "no plxfs daemon answers for /mnt: is plxfs mounted there? (looked for /nonexistent/s.sock)"},
	} {
		code, _, errOut := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("plxfs %q: exit %d, stderr %q; want %d and %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}
}

func TestObservabilityErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	rt := &runtime{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	status := func() control.Status { return control.Status{} }
	for _, tc := range []struct {
		name string
		opts observeOptions
		want string
	}{
		{"metrics port in use", observeOptions{MetricsAddr: busy.Addr().String(), Metrics: metrics.New()}, "--metrics-addr " + busy.Addr().String()},
		{"pprof port in use", observeOptions{PprofAddr: busy.Addr().String()}, "--pprof-addr"},
		{"explicit socket in a missing directory", observeOptions{StatusSocket: "/nonexistent/dir/s.sock", Status: status}, "--status-socket /nonexistent/dir/s.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A metrics server started before the failing part must not be left running.
			tc.opts.Mountpoint = "/mnt/x"
			stop, err := startObservability(context.Background(), rt, tc.opts)
			if err == nil {
				stop()
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q lacks %q", err, tc.want)
			}
		})
	}
}

// The flags and their environment variables reach observeOptions.
func TestObserveFlags(t *testing.T) {
	t.Setenv("PLXFS_METRICS_ADDR", ":9464")
	var got observeOptions
	var debug bool
	app := &cli.App{Name: "t", Commands: []*cli.Command{{
		Name: "mount", Flags: observeFlags(),
		Action: func(c *cli.Context) error {
			got = observeOptionsFrom(c, "/mnt/x", nil, nil)
			debug = c.Bool("debug-fuse")
			return nil
		},
	}}}
	if err := app.Run([]string{"t", "mount", "--pprof-addr", "127.0.0.1:6060", "--status-socket", "/run/s.sock", "--debug-fuse"}); err != nil {
		t.Fatal(err)
	}
	want := observeOptions{MetricsAddr: ":9464", PprofAddr: "127.0.0.1:6060", StatusSocket: "/run/s.sock", Mountpoint: "/mnt/x"}
	if got.MetricsAddr != want.MetricsAddr || got.PprofAddr != want.PprofAddr || got.StatusSocket != want.StatusSocket || got.Mountpoint != want.Mountpoint || !debug {
		t.Errorf("options %+v (debug %v), want %+v and debug", got, debug, want)
	}
}
