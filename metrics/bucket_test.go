package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
	"github.com/plxfs/plxfs/store/storetest"
)

// emulated starts fake-gcs-server with the given buckets and returns a store/gcs client on it.
func emulated(t *testing.T, buckets ...string) (*emulator.Server, *gcs.Client) {
	t.Helper()
	em, err := emulator.Start(emulator.Options{Buckets: buckets})
	if err != nil {
		t.Fatalf("emulator: %v", err)
	}
	t.Cleanup(em.Stop)
	c, err := gcs.NewClient(context.Background(), gcs.Options{Endpoint: em.URL(), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return em, c
}

// The decorator is transparent: the whole store contract holds through it.
func TestBucketConformance(t *testing.T) {
	em, c := emulated(t)
	m := metrics.New()
	var n atomic.Int64
	storetest.Run(t, func(t *testing.T) store.Bucket {
		name := fmt.Sprintf("conf-%03d", n.Add(1))
		if err := em.CreateBucket(name); err != nil {
			t.Fatal(err)
		}
		return metrics.Bucket(c.Bucket(name), m)
	})
	if total(t, m, "plxfs_gcs_requests_total") == 0 {
		t.Error("the conformance suite ran through the decorator but no request was counted")
	}
}

func write(ctx context.Context, b store.Bucket, name string, data []byte, ifGen int64) (store.Attrs, error) {
	w, err := b.NewWriter(ctx, name, store.WriteOptions{IfGen: ifGen})
	if err != nil {
		return store.Attrs{}, err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return store.Attrs{}, err
	}
	return w.Commit()
}

func readAll(ctx context.Context, b store.Bucket, name string, gen, off, n int64) ([]byte, error) {
	r, err := b.NewRangeReader(ctx, name, gen, off, n)
	if err != nil {
		return nil, err
	}
	data, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	return data, err
}

// Each call is one request, counted under its method and outcome, with one latency sample.
func TestBucketCountsByMethodAndCode(t *testing.T) {
	_, c := emulated(t, "bkt")
	m := metrics.New()
	b := metrics.Bucket(c.Bucket("bkt"), m)
	ctx := context.Background()
	content := bytes.Repeat([]byte("0123456789"), 100) // 1000 bytes
	var gen int64
	canceled, cancel := context.WithCancel(ctx)
	cancel()

	steps := []struct {
		name         string
		do           func() error
		method, code string
		wantErr      error // nil: must succeed; otherwise errors.Is
		readBytes    int64 // plxfs_gcs_read_bytes_total added
		writtenBytes int64 // plxfs_gcs_write_bytes_total added
	}{
		{"stat missing", func() error { _, err := b.Stat(ctx, "a"); return err }, "Stat", "not_found", store.ErrNotExist, 0, 0},
		{"write new", func() error {
			a, err := write(ctx, b, "a", content, 0)
			gen = a.Generation
			return err
		}, "Write", "ok", nil, 0, 1000},
		{"write over existing with must-not-exist", func() error { _, err := write(ctx, b, "a", content[:10], 0); return err },
			"Write", "precondition", store.ErrPrecondition, 0, 10},
		{"stat", func() error { _, err := b.Stat(ctx, "a"); return err }, "Stat", "ok", nil, 0, 0},
		{"read whole", func() error {
			got, err := readAll(ctx, b, "a", 0, 0, -1)
			if err == nil && !bytes.Equal(got, content) {
				return fmt.Errorf("read %d bytes, not the content", len(got))
			}
			return err
		}, "Read", "ok", nil, 1000, 0},
		{"read range of a generation", func() error {
			got, err := readAll(ctx, b, "a", gen, 100, 200)
			if err == nil && !bytes.Equal(got, content[100:300]) {
				return fmt.Errorf("read %q, want bytes 100-299", got)
			}
			return err
		}, "Read", "ok", nil, 200, 0},
		{"read missing", func() error { _, err := readAll(ctx, b, "nope", 0, 0, -1); return err }, "Read", "not_found", store.ErrNotExist, 0, 0},
		{"list", func() error { _, err := b.List(ctx, store.ListOptions{Delimiter: "/"}); return err }, "List", "ok", nil, 0, 0},
		{"compose", func() error { _, err := b.Compose(ctx, "c", []string{"a", "a"}, store.WriteOptions{}); return err }, "Compose", "ok", nil, 0, 0},
		{"copy", func() error { _, err := b.Copy(ctx, "a", 0, "d", store.WriteOptions{}); return err }, "Copy", "ok", nil, 0, 0},
		{"update metadata", func() error {
			_, err := b.UpdateMetadata(ctx, "a", 0, map[string]string{"k": "v"})
			return err
		}, "UpdateMetadata", "ok", nil, 0, 0},
		{"delete", func() error { return b.Delete(ctx, "d", 0) }, "Delete", "ok", nil, 0, 0},
		{"delete missing", func() error { return b.Delete(ctx, "d", 0) }, "Delete", "not_found", store.ErrNotExist, 0, 0},
		{"abort a write (twice)", func() error {
			w, err := b.NewWriter(ctx, "e", store.WriteOptions{})
			if err != nil {
				return err
			}
			w.Write([]byte("xyz"))
			w.Abort()
			w.Abort()
			return nil
		}, "Write", "canceled", nil, 0, 3},
		{"canceled context", func() error { _, err := b.Stat(canceled, "a"); return err }, "Stat", "canceled", context.Canceled, 0, 0},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			before := value(t, m, "plxfs_gcs_requests_total", "method", s.method, "code", s.code)
			all := total(t, m, "plxfs_gcs_requests_total")
			durations := value(t, m, "plxfs_gcs_request_duration_seconds", "method", s.method)
			read := value(t, m, "plxfs_gcs_read_bytes_total")
			written := value(t, m, "plxfs_gcs_write_bytes_total")

			err := s.do()
			if s.wantErr == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if s.wantErr != nil && !errors.Is(err, s.wantErr) {
				t.Fatalf("error %v, want one wrapping %v", err, s.wantErr)
			}
			if d := value(t, m, "plxfs_gcs_requests_total", "method", s.method, "code", s.code) - before; d != 1 {
				t.Errorf("requests{method=%s,code=%s} grew by %v, want 1", s.method, s.code, d)
			}
			if d := total(t, m, "plxfs_gcs_requests_total") - all; d != 1 {
				t.Errorf("all requests grew by %v, want 1", d)
			}
			if d := value(t, m, "plxfs_gcs_request_duration_seconds", "method", s.method) - durations; d != 1 {
				t.Errorf("duration samples of %s grew by %v, want 1", s.method, d)
			}
			if d := value(t, m, "plxfs_gcs_read_bytes_total") - read; d != float64(s.readBytes) {
				t.Errorf("read bytes grew by %v, want %d", d, s.readBytes)
			}
			if d := value(t, m, "plxfs_gcs_write_bytes_total") - written; d != float64(s.writtenBytes) {
				t.Errorf("written bytes grew by %v, want %d", d, s.writtenBytes)
			}
		})
	}
	if got := m.Snapshot().GCSReadBytes; got != 1200 {
		t.Errorf("Snapshot().GCSReadBytes = %d, want 1200", got)
	}
	if b.Name() != "bkt" {
		t.Errorf("Name() = %q, want bkt", b.Name())
	}
}

// Bytes count as they arrive, before the reader is closed; the request counts at Close, once.
func TestBucketReadCountsWhileStreaming(t *testing.T) {
	em, c := emulated(t, "bkt")
	if err := em.PutObject("bkt", "big", bytes.Repeat([]byte{7}, 1<<20), ""); err != nil {
		t.Fatal(err)
	}
	m := metrics.New()
	b := metrics.Bucket(c.Bucket("bkt"), m)
	r, err := b.NewRangeReader(context.Background(), "big", 0, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if got := value(t, m, "plxfs_gcs_read_bytes_total"); got < 4096 {
		t.Errorf("read bytes %v after reading 4096 bytes of an open reader", got)
	}
	if got := value(t, m, "plxfs_gcs_requests_total", "method", "Read"); got != 0 {
		t.Errorf("Read requests %v before Close, want 0", got)
	}
	r.Close()
	r.Close()
	if got := value(t, m, "plxfs_gcs_requests_total", "method", "Read", "code", "ok"); got != 1 {
		t.Errorf("Read requests %v after two Closes, want 1", got)
	}
}

func TestCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{fmt.Errorf("stat x: %w", store.ErrNotExist), "not_found"},
		{fmt.Errorf("write x: %w", store.ErrPrecondition), "precondition"},
		{fmt.Errorf("read: %w", context.Canceled), "canceled"},
		{fmt.Errorf("read: %w", context.DeadlineExceeded), "canceled"},
		{errors.New("connection reset"), "error"},
	} {
		if got := metrics.Code(tc.err); got != tc.want {
			t.Errorf("Code(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
