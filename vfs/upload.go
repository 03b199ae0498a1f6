package vfs

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// UploadObserver is told of every upload (for metrics). Its methods must not block.
type UploadObserver interface {
	// UploadStarted is called when a file's upload starts.
	UploadStarted()
	// UploadFinished is called once per UploadStarted, with the file's size and the outcome.
	UploadFinished(bytes int64, err error)
}

// Uploader hands the staged content of a connection's files to its bucket: the upload
// hand-off. A new file written in order streams (NewStream: a transfer.PartWriter fed by every
// write, whose completed parts upload in the background, bounded by Slots); Send then
// commits the stream (the tail part and the compose) or uploads the whole content with
// transfer.Upload. Every upload is conditional (store.WriteOptions.IfGen), so nothing partial
// is ever visible and a concurrent writer is never clobbered.
type Uploader struct {
	Objects  *Objects            // the connection's namespace, for object names in errors
	View     store.Bucket        // the connection's view of the bucket (store.WithPrefix)
	Options  transfer.Options    // transfer's tuning of whole uploads
	Slots    *semaphore.Weighted // bounds the parts of streamed uploads in flight, over all files
	Observer UploadObserver      // never nil
	Log      *slog.Logger        // never nil
	Now      func() time.Time    // the clock
}

// NewStream starts the part writer of a file staged in src.
func (u *Uploader) NewStream(src io.ReaderAt) *transfer.PartWriter {
	opts := u.Options
	opts.Slots = u.Slots
	return transfer.NewPartWriter(u.View, src, opts)
}

// Send uploads size bytes of src as the file at p under wo: it commits stream when its parts
// have started uploading (only the tail and the compose are left), and uploads the whole
// content otherwise, or when the commit failed. A stream that never started is aborted. ctx's
// cancellation does not stop it (a close cannot be retried by the application, so an upload
// once started runs to its end); its deadline still applies.
func (u *Uploader) Send(ctx context.Context, p string, src io.ReaderAt, size int64, wo store.WriteOptions, stream *transfer.PartWriter) (store.Attrs, error) {
	ctx = context.WithoutCancel(ctx)
	if stream != nil && stream.Started() {
		u.Observer.UploadStarted()
		attrs, err := stream.Commit(ctx, p, size, wo)
		u.Observer.UploadFinished(size, err)
		if err == nil {
			return attrs, nil
		}
		u.Log.Warn("upload of parts written so far failed; uploading the whole file again", "path", p, "err", err)
	} else if stream != nil {
		stream.Abort()
	}
	return u.Upload(ctx, p, src, size, wo)
}

// Upload sends size bytes of src as the file at p under wo with transfer.Upload (one request,
// or parallel parts and a compose for big files).
func (u *Uploader) Upload(ctx context.Context, p string, src io.ReaderAt, size int64, wo store.WriteOptions) (store.Attrs, error) {
	ctx = context.WithoutCancel(ctx)
	start := u.Now()
	u.Observer.UploadStarted()
	attrs, err := transfer.Upload(ctx, u.View, p, src, size, wo, u.Options)
	u.Observer.UploadFinished(size, err)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("upload gs://%s/%s (%d bytes, if generation %d): %w", u.Objects.Bucket().Name(), u.Objects.Name(p), size, wo.IfGen, err)
	}
	u.Log.Debug("uploaded", "path", p, "bytes", size, "generation", attrs.Generation, "elapsed", u.Now().Sub(start))
	return attrs, nil
}
