package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/transfer"
)

const testBucket = "test-bucket"

// connSpec is one connection of a test mount.
type connSpec struct {
	name, bucket, prefix string
}

// envOptions configure newEnv. Zero values: memory backend, one bucket, one connection "c"
// on the whole bucket, TTL 60 s, 1 MiB chunks, 1 GiB cache.
type envOptions struct {
	backend    string
	buckets    []string
	conns      []connSpec
	ttl        time.Duration
	chunkSize  int64
	cacheMax   int64
	readAhead  int
	readOnly   bool
	noPosix    bool // Options.NoPOSIXMetadata
	allowOther bool // MountOptions.AllowOther
	handler    func(http.Handler) http.Handler
	upload     transfer.Options
	now        func() time.Time
}

// testEnv is a running emulator plus a plxfs mount of it.
type testEnv struct {
	t        *testing.T
	opts     envOptions
	emu      *emulator.Server
	client   *gcs.Client
	cacheDir string
	staging  string
	// syncErrOK: failed uploads at unmount are expected (the test left unuploadable changes).
	syncErrOK bool

	// Current mount; replaced by remount.
	cache  *cache.Cache
	fsys   *FS
	server *fuse.Server
	mnt    string
}

// newEnv starts an emulator and mounts plxfs on it; everything is torn down by t.Cleanup.
func newEnv(t *testing.T, opts envOptions) *testEnv {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Fatalf("FUSE is required for these tests and /dev/fuse is not usable: %v", err)
	}
	if len(opts.buckets) == 0 {
		opts.buckets = []string{testBucket}
	}
	if len(opts.conns) == 0 {
		opts.conns = []connSpec{{name: "c", bucket: opts.buckets[0]}}
	}
	if opts.chunkSize == 0 {
		opts.chunkSize = 1 << 20
	}
	if opts.cacheMax == 0 {
		opts.cacheMax = 1 << 30
	}
	emu, err := emulator.Start(emulator.Options{Backend: opts.backend, Buckets: opts.buckets, Handler: opts.handler})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(emu.Stop)
	client, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: emu.URL(), MaxAttempts: 3, RetryDeadline: 5 * time.Second})
	if err != nil {
		t.Fatalf("gcs client: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	e := &testEnv{t: t, opts: opts, emu: emu, client: client, cacheDir: t.TempDir(), staging: t.TempDir(), mnt: t.TempDir()}
	e.mount()
	t.Cleanup(e.unmount)
	return e
}

// mount opens the cache and mounts a new filesystem at e.mnt.
func (e *testEnv) mount() {
	t := e.t
	t.Helper()
	c, err := cache.Open(cache.Options{Dir: e.cacheDir, MaxBytes: e.opts.cacheMax, ChunkSize: e.opts.chunkSize, Readahead: e.opts.readAhead, Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open cache: %v", err)
	}
	var conns []Connection
	for _, cs := range e.opts.conns {
		conns = append(conns, Connection{Name: cs.name, Bucket: e.client.Bucket(cs.bucket), Prefix: cs.prefix})
	}
	up := e.opts.upload
	if up.Owner == "" {
		up.Owner = "test-owner"
	}
	fsys, err := New(Options{
		Connections:     conns,
		Cache:           c,
		StagingDir:      e.staging,
		TTL:             e.opts.ttl,
		ReadOnly:        e.opts.readOnly,
		NoPOSIXMetadata: e.opts.noPosix,
		Upload:          up,
		Logger:          testLogger(t),
		Now:             e.opts.now,
	})
	if err != nil {
		c.Close()
		t.Fatalf("new fs: %v", err)
	}
	if _, err := fsys.CleanupTempParts(context.Background()); err != nil {
		t.Fatalf("cleanup temp parts: %v", err)
	}
	server, err := fsys.Mount(e.mnt, MountOptions{AllowOther: e.opts.allowOther})
	if err != nil {
		c.Close()
		t.Fatalf("mount: %v", err)
	}
	e.cache, e.fsys, e.server = c, fsys, server
}

// unmount uploads pending changes, unmounts and closes the cache. Safe to call twice.
func (e *testEnv) unmount() {
	if e.server == nil {
		return
	}
	if err := e.fsys.SyncAll(context.Background()); err != nil && !e.syncErrOK {
		e.t.Errorf("sync at unmount: %v", err)
	}
	var err error
	start := time.Now()
	for i := 0; i < 50; i++ {
		if err = e.server.Unmount(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if d := time.Since(start); d > time.Second {
		e.t.Logf("unmount took %v (last error %v)", d, err)
	}
	if err != nil {
		e.t.Errorf("unmount %s: %v", e.mnt, err)
		_ = syscall.Unmount(e.mnt, syscall.MNT_DETACH)
	}
	e.server.Wait()
	e.cache.Close()
	e.server = nil
}

// remount unmounts and mounts again on the same cache directory (a daemon restart).
func (e *testEnv) remount() {
	e.unmount()
	e.mount()
}

// path is the mount path of rel in connection conn.
func (e *testEnv) path(conn, rel string) string { return filepath.Join(e.mnt, conn, rel) }

// put stores an object directly in the emulator.
func (e *testEnv) put(bucket, name string, data []byte) int64 {
	e.t.Helper()
	gen, err := e.emu.PutObjectGen(bucket, name, data, "")
	if err != nil {
		e.t.Fatalf("put %s: %v", name, err)
	}
	return gen
}

// get reads an object directly from the emulator.
func (e *testEnv) get(bucket, name string) ([]byte, bool) {
	e.t.Helper()
	o, err := e.emu.GetObject(bucket, name)
	if err != nil {
		return nil, false
	}
	return o.Content, true
}

func (e *testEnv) bucket(name string) store.Bucket { return e.client.Bucket(name) }

// randBytes returns n deterministic pseudo-random bytes for seed.
func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

func sum(b []byte) [32]byte { return sha256.Sum256(b) }

// fileSum reads a file and returns its SHA-256 and size.
func fileSum(t *testing.T, path string) ([32]byte, int64) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("open %s: %v", path, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	var s [32]byte
	copy(s[:], h.Sum(nil))
	return s, n
}

func mustWrite(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write %s: %v", path, err)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return b
}

func assertErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got error %v, want %v (%d)", err, want, want)
	}
}

func equalBytes(t *testing.T, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes (sha256 %x), want %d bytes (sha256 %x)", what, len(got), sum(got), len(want), sum(want))
	}
}

// testLogger logs to the test's output at warn level (debug with PLXFS_TEST_DEBUG=1).
func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if os.Getenv("PLXFS_TEST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}
