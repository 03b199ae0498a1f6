package store_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/plxfs/plxfs/store"
)

// stallBucket blocks every call until its context ends.
type stallBucket struct{ store.Bucket }

func (stallBucket) Stat(ctx context.Context, name string) (store.Attrs, error) {
	<-ctx.Done()
	return store.Attrs{}, ctx.Err()
}

func (stallBucket) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	<-ctx.Done()
	return store.Page{}, ctx.Err()
}

func (stallBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	return io.NopCloser(ctxReader{ctx}), nil
}

type ctxReader struct{ ctx context.Context }

func (r ctxReader) Read(p []byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func TestWithTimeout(t *testing.T) {
	b := store.WithTimeout(stallBucket{}, 50*time.Millisecond)
	ctx := context.Background()
	if _, err := b.Stat(ctx, "x"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stat on a stalled backend: %v, want DeadlineExceeded", err)
	}
	if _, err := b.List(ctx, store.ListOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("List on a stalled backend: %v, want DeadlineExceeded", err)
	}
	r, err := b.NewRangeReader(ctx, "x", 1, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reading from a stalled backend: %v, want DeadlineExceeded", err)
	}
	r.Close()
	if got := store.WithTimeout(stallBucket{}, 0); got != (stallBucket{}) {
		t.Errorf("WithTimeout(b, 0) should return b itself")
	}
}

// A reader that finishes within the deadline is unaffected, and its deadline is released on Close.
func TestWithTimeoutReaderWithinDeadline(t *testing.T) {
	b := store.WithTimeout(quickBucket{}, time.Second)
	r, err := b.NewRangeReader(context.Background(), "x", 1, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(r)
	if err != nil || string(data) != "hello" {
		t.Errorf("read %q, %v", data, err)
	}
	if err := r.Close(); err != nil {
		t.Error(err)
	}
}

type quickBucket struct{ store.Bucket }

func (quickBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("hello")), nil
}
