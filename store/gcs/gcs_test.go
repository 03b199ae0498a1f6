package gcs

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc32"
	"io"
	"testing"
	"time"

	"google.golang.org/api/googleapi"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/store"
)

// newEmulated starts an emulator with one bucket and returns it with a client bucket over it.
func newEmulated(t *testing.T, opts emulator.Options, gopts Options) (*emulator.Server, store.Bucket) {
	t.Helper()
	if len(opts.Buckets) == 0 {
		opts.Buckets = []string{"bkt"}
	}
	em, err := emulator.Start(opts)
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(em.Stop)
	gopts.Endpoint = em.URL()
	c, err := NewClient(context.Background(), gopts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return em, c.Bucket(opts.Buckets[0])
}

func TestReadWriteBasics(t *testing.T) {
	ctx := context.Background()
	em, b := newEmulated(t, emulator.Options{}, Options{})
	w, err := b.NewWriter(ctx, "x/y", store.WriteOptions{Metadata: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("hello world")); err != nil {
		t.Fatal(err)
	}
	a, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "x/y" || a.Size != 11 || a.Generation == 0 || a.Metadata["k"] != "v" {
		t.Fatalf("attrs %+v", a)
	}
	r, err := b.NewRangeReader(ctx, "x/y", a.Generation, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != "llo" {
		t.Fatalf("read %q %v", got, err)
	}
	if _, err := b.NewRangeReader(ctx, "x/y", a.Generation+1, 0, -1); !errors.Is(err, store.ErrNotExist) && !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("wrong generation: %v", err)
	}
	reads := em.Requests().ReadsOf("bkt", "x/y")
	if len(reads) != 2 || reads[0].Range != "bytes=2-4" {
		t.Fatalf("reads %+v", reads)
	}
}

func TestBadEndpoint(t *testing.T) {
	if _, err := NewClient(context.Background(), Options{Endpoint: "127.0.0.1:1"}); err == nil {
		t.Fatal("endpoint without scheme accepted")
	}
}

func TestMissingBucket(t *testing.T) {
	ctx := context.Background()
	em, _ := newEmulated(t, emulator.Options{}, Options{})
	c, err := NewClient(ctx, Options{Endpoint: em.URL()})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Bucket("nope")
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("stat in missing bucket: %v", err)
	}
	if _, err := b.List(ctx, store.ListOptions{}); !errors.Is(err, store.ErrNotExist) {
		t.Fatalf("list of missing bucket: %v", err)
	}
}

// TestGzipStoredBytes checks that objects stored with Content-Encoding: gzip are read as their
// stored bytes, whole and in ranges, so sizes, offsets and checksums agree with Stat.
func TestGzipStoredBytes(t *testing.T) {
	for _, backend := range []string{"memory", "filesystem"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			em, b := newEmulated(t, emulator.Options{Backend: backend}, Options{})
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			zw.Write(bytes.Repeat([]byte("compressible text "), 5000))
			zw.Close()
			gz := buf.Bytes()
			if err := em.PutObject("bkt", "logs/z.txt", gz, "gzip"); err != nil {
				t.Fatal(err)
			}
			a, err := b.Stat(ctx, "logs/z.txt")
			if err != nil {
				t.Fatal(err)
			}
			if a.ContentEncoding != "gzip" || a.Size != int64(len(gz)) || a.CRC32C != crc32.Checksum(gz, crc32c.Table) {
				t.Fatalf("attrs %+v (stored %d bytes)", a, len(gz))
			}
			for _, rg := range []struct{ off, n int64 }{{0, -1}, {10, 100}, {int64(len(gz)) - 5, 50}} {
				r, err := b.NewRangeReader(ctx, "logs/z.txt", a.Generation, rg.off, rg.n)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(r)
				r.Close()
				end := int64(len(gz))
				if rg.n >= 0 && rg.off+rg.n < end {
					end = rg.off + rg.n
				}
				if err != nil || !bytes.Equal(got, gz[rg.off:end]) {
					t.Fatalf("range %+v: %d bytes, err %v; want the stored bytes [%d,%d)", rg, len(got), err, rg.off, end)
				}
			}
		})
	}
}

func TestRetryBudget(t *testing.T) {
	transient := &googleapi.Error{Code: 503}
	tests := []struct {
		name  string
		max   int
		errs  []error
		wants []bool
	}{
		{"stops after max consecutive failures", 3, []error{transient, transient, transient}, []bool{true, true, false}},
		{"success ends a streak", 2, []error{transient, nil, transient, nil, transient}, []bool{true, false, true, false, true}},
		{"permanent errors are not retried", 5, []error{&googleapi.Error{Code: 412}, &googleapi.Error{Code: 404}}, []bool{false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &retryBudget{max: tc.max, deadline: time.Hour}
			for i, err := range tc.errs {
				if got := b.shouldRetry(err); got != tc.wants[i] {
					t.Fatalf("call %d (%v): %v, want %v", i, err, got, tc.wants[i])
				}
			}
		})
	}
	b := &retryBudget{max: 100, deadline: time.Nanosecond}
	b.shouldRetry(transient)
	time.Sleep(time.Millisecond)
	if b.shouldRetry(transient) {
		t.Fatal("retry allowed after the streak outlasted the deadline")
	}
}

// TestStorageEmulatorHost checks the path the plxfs binary takes in integration tests: no
// Endpoint, STORAGE_EMULATOR_HOST set to the emulator's Host().
func TestStorageEmulatorHost(t *testing.T) {
	ctx := context.Background()
	em, err := emulator.Start(emulator.Options{Buckets: []string{"env"}})
	if err != nil {
		t.Fatal(err)
	}
	defer em.Stop()
	if err := em.PutObject("env", "o", []byte("via env"), ""); err != nil {
		t.Fatal(err)
	}
	t.Setenv("STORAGE_EMULATOR_HOST", em.Host())
	c, err := NewClient(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := c.Bucket("env")
	r, err := b.NewRangeReader(ctx, "o", 0, 4, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != "env" {
		t.Fatalf("read %q %v", got, err)
	}
	a, err := write(ctx, b, "w", []byte("written"))
	if err != nil || a.Size != 7 {
		t.Fatalf("write %+v %v", a, err)
	}
}

func write(ctx context.Context, b store.Bucket, name string, data []byte) (store.Attrs, error) {
	w, err := b.NewWriter(ctx, name, store.WriteOptions{})
	if err != nil {
		return store.Attrs{}, err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return store.Attrs{}, err
	}
	return w.Commit()
}
