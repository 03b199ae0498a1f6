package vfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/memstore"
	"github.com/plxfs/plxfs/transfer"
)

type countingObserver struct{ started, finished, failed atomic.Int64 }

func (o *countingObserver) UploadStarted() { o.started.Add(1) }
func (o *countingObserver) UploadFinished(_ int64, err error) {
	o.finished.Add(1)
	if err != nil {
		o.failed.Add(1)
	}
}

func newUploader(b *memstore.Bucket, opts transfer.Options) (*Uploader, *countingObserver) {
	obs := &countingObserver{}
	return &Uploader{Objects: NewObjects(b, "c/"), View: store.WithPrefix(b, "c/"), Options: opts,
		Observer: obs, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Now: time.Now}, obs
}

// TestSendOverwriteWithPrecondition: an upload replaces the generation it was staged from and
// nothing else: a file replaced behind the mount fails with ErrPrecondition, untouched.
func TestSendOverwriteWithPrecondition(t *testing.T) {
	b := memstore.New("up")
	u, obs := newUploader(b, transfer.Options{})
	ctx := context.Background()
	old := put(t, b, "c/f", "old")
	data := []byte("new content")
	a, err := u.Send(ctx, "f", bytes.NewReader(data), int64(len(data)), store.WriteOptions{IfGen: old.Generation}, nil)
	if err != nil || content(t, b, "c/f") != "new content" {
		t.Fatalf("Send: %+v, %v", a, err)
	}
	put(t, b, "c/f", "theirs")
	_, err = u.Send(ctx, "f", bytes.NewReader(data), int64(len(data)), store.WriteOptions{IfGen: a.Generation}, nil)
	if !errors.Is(err, store.ErrPrecondition) || !strings.Contains(err.Error(), "gs://up/c/f") {
		t.Fatalf("Send over a generation replaced behind the mount: %v", err)
	}
	if content(t, b, "c/f") != "theirs" {
		t.Fatal("a failed upload changed the object")
	}
	if _, err := u.Send(ctx, "g", bytes.NewReader(data), int64(len(data)), store.WriteOptions{}, nil); err != nil {
		t.Fatalf("new file: %v", err)
	}
	if _, err := u.Send(ctx, "g", bytes.NewReader(data), int64(len(data)), store.WriteOptions{}, nil); !errors.Is(err, store.ErrPrecondition) {
		t.Fatalf("new file whose name was taken: %v", err)
	}
	if obs.started.Load() != 4 || obs.finished.Load() != 4 || obs.failed.Load() != 2 {
		t.Fatalf("observer: %d started, %d finished, %d failed", obs.started.Load(), obs.finished.Load(), obs.failed.Load())
	}
}

// TestSendStreamed: a file written in order past the compose threshold is committed from its
// stream (parts and a compose); a stream that never started is aborted and the file uploaded
// whole.
func TestSendStreamed(t *testing.T) {
	b := memstore.New("up")
	u, _ := newUploader(b, transfer.Options{ComposeThreshold: 1 << 10, PartSize: 1 << 10, ChunkSize: 1 << 10})
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 300) // 4,800 bytes: 4 parts and a tail
	src := bytes.NewReader(data)
	s := u.NewStream(src)
	for off := 0; off < len(data); off += 512 {
		end := min(off+512, len(data))
		if !s.Wrote(data[off:end], int64(off)) {
			t.Fatalf("write at %d refused", off)
		}
	}
	if !s.Started() {
		t.Fatal("stream past the threshold did not start")
	}
	a, err := u.Send(ctx, "big", src, int64(len(data)), store.WriteOptions{}, s)
	if err != nil || a.Size != int64(len(data)) {
		t.Fatalf("streamed Send: %+v, %v", a, err)
	}
	if got, _ := b.Content("c/big"); !bytes.Equal(got, data) {
		t.Fatal("streamed content differs")
	}
	if b.Requests()[memstore.OpCompose] == 0 {
		t.Fatal("no compose: the stream was not committed")
	}

	small := []byte("tiny")
	s = u.NewStream(bytes.NewReader(small))
	s.Wrote(small, 0)
	if _, err := u.Send(ctx, "small", bytes.NewReader(small), 4, store.WriteOptions{}, s); err != nil {
		t.Fatal(err)
	}
	if content(t, b, "c/small") != "tiny" {
		t.Fatal("small file")
	}
}
