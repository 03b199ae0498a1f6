package store

import (
	"context"
	"io"
	"time"
)

// WithTimeout returns a view of b whose quick calls — Stat, List, NewRangeReader (the whole
// read, until Close), Delete and UpdateMetadata — each end after d with an error wrapping
// context.DeadlineExceeded, so a stalled backend cannot hang a caller (a FUSE request) forever.
// Uploads (NewWriter, Compose) and server-side copies run as long as they need: their retries
// are bounded by the implementation, and a big object legitimately takes long. d <= 0 returns b.
func WithTimeout(b Bucket, d time.Duration) Bucket {
	if d <= 0 {
		return b
	}
	return &timeoutBucket{Bucket: b, d: d}
}

type timeoutBucket struct {
	Bucket // NewWriter, Compose, Copy and Name pass through
	d      time.Duration
}

func (t *timeoutBucket) Stat(ctx context.Context, name string) (Attrs, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.Bucket.Stat(ctx, name)
}

func (t *timeoutBucket) List(ctx context.Context, opts ListOptions) (Page, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.Bucket.List(ctx, opts)
}

func (t *timeoutBucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	r, err := t.Bucket.NewRangeReader(ctx, name, gen, off, n)
	if err != nil {
		cancel()
		return nil, err
	}
	return &cancelOnClose{ReadCloser: r, cancel: cancel}, nil
}

func (t *timeoutBucket) Delete(ctx context.Context, name string, gen int64) error {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.Bucket.Delete(ctx, name, gen)
}

func (t *timeoutBucket) UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (Attrs, error) {
	ctx, cancel := context.WithTimeout(ctx, t.d)
	defer cancel()
	return t.Bucket.UpdateMetadata(ctx, name, gen, md)
}

// cancelOnClose releases a reader's deadline when the reader is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (r *cancelOnClose) Close() error {
	err := r.ReadCloser.Close()
	r.cancel()
	return err
}
