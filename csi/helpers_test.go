package csi_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/creds"
	"github.com/plxfs/plxfs/csi"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
)

// testDriver is a driver served in this process over a unix socket, against fake-gcs-server,
// with real FUSE mounts.
type testDriver struct {
	*csi.Driver
	Socket string
	srv    *emulator.Server
}

// startDriver starts the emulator (with buckets), the node cache and the driver; everything
// stops with the test, every volume unmounted.
func startDriver(t *testing.T, buckets ...string) *testDriver {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("these tests mount for real and need /dev/fuse: %v", err)
	}
	srv, err := emulator.Start(emulator.Options{Buckets: buckets})
	if err != nil {
		t.Fatalf("starting the emulator: %v", err)
	}
	t.Cleanup(srv.Stop)
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ch, err := cache.Open(cache.Options{Dir: filepath.Join(dir, "cache"), MaxBytes: 64 << 20, ChunkSize: 1 << 20, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	open := func(ctx context.Context, bucket string, cr creds.Credentials, counters *store.Counters) (store.Bucket, io.Closer, error) {
		c, err := gcs.NewClient(ctx, gcs.Options{Endpoint: srv.URL(), Counters: counters})
		if err != nil {
			return nil, nil, err
		}
		return c.Bucket(bucket), c, nil
	}
	d, err := csi.New(csi.Options{NodeID: "test-node", Version: "test", OpenBucket: open, Cache: ch, CacheSize: 64 << 20,
		StateDir: filepath.Join(dir, "state"), Grace: 30 * time.Second, Logger: log,
		Env: creds.EnvFrom(nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	d.Recover(context.Background())
	ctx, cancel := context.WithCancel(context.Background())
	sock := filepath.Join(dir, "csi.sock")
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx, "unix://"+sock) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := d.Shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		ch.Close()
	})
	waitSocket(t, sock)
	return &testDriver{Driver: d, Socket: sock, srv: srv}
}

func waitSocket(t *testing.T, sock string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return
		}
	}
	t.Fatalf("the driver's socket %s did not appear", sock)
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
