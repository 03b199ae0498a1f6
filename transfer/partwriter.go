package transfer

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"sync"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
)

// PartWriter uploads an object whose content is written in order from offset 0 into src (a
// file being written sequentially) while it is being written, so that committing it only
// uploads the tail and composes: a big file does not wait for its whole upload at close.
//
// The writer is told of every write (Wrote). Once the content reaches Options.ComposeThreshold,
// every completed part of Options.PartSize bytes is uploaded in the background, read back from
// src, as a temporary object under TempDir/<Owner>-<random>/ (the same parts, restarts,
// compose tree and checks as Upload's composed uploads), with at most Options.Workers (or
// Options.Slots) requests in flight. Commit uploads the remaining parts and composes them into
// the object under the caller's precondition, with the CRC32C of the whole content as it was
// written; Abort gives up. Either way every temporary object is deleted (Commit deletes them
// before it returns; Abort in the background), and nothing is visible under the object's name
// unless Commit succeeds.
//
// A write out of sequence (an earlier offset, a gap) breaks the writer: Wrote returns false,
// and the caller should Abort it and upload the content with Upload instead.
//
// Methods are safe for concurrent use, but writes must be reported in the order they were
// made, and src must hold every byte reported before Commit reads it.
type PartWriter struct {
	u        *composedUpload
	src      io.ReaderAt
	partSize int64
	ctx      context.Context // the parts' context: cancelled by Abort and at the end of Commit
	cancel   context.CancelFunc
	wg       sync.WaitGroup // part uploads in flight
	once     sync.Once      // cleanup

	// mu guards the fields below; it is a leaf lock (callers may hold their own).
	mu     sync.Mutex
	end    int64  // bytes [0, end) were written in order
	crc    uint32 // CRC32C of [0, end)
	broken bool   // a write out of sequence, or Abort
	parts  []component
	errs   []error
}

// NewPartWriter returns a writer of parts of src into b. Nothing is uploaded until the content
// reaches opts.ComposeThreshold (the default when 0; a negative threshold never uploads, and
// Started stays false).
func NewPartWriter(b store.Bucket, src io.ReaderAt, opts Options) *PartWriter {
	opts = opts.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	return &PartWriter{
		u:   &composedUpload{b: b, dir: TempDir + "/" + ownerDir(opts.Owner), opts: opts},
		src: src, partSize: opts.PartSize, ctx: ctx, cancel: cancel,
	}
}

// Wrote records that data was written at off. It returns false, and the writer is broken,
// when the write does not continue the content written so far.
func (w *PartWriter) Wrote(data []byte, off int64) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.broken || off != w.end {
		w.broken = true
		return false
	}
	w.crc = crc32.Update(w.crc, crc32c.Table, data)
	w.end += int64(len(data))
	if t := w.u.opts.ComposeThreshold; t < 0 || w.end < t {
		return true
	}
	for int64(len(w.parts)+1)*w.partSize <= w.end {
		w.startLocked(w.partSize)
	}
	return true
}

// Started reports whether a part has started uploading: if not, Commit has nothing to gain
// over Upload.
func (w *PartWriter) Started() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.parts) > 0
}

// startLocked starts the upload of the next part, size bytes at its offset; w.mu is held.
func (w *PartWriter) startLocked(size int64) {
	i := len(w.parts)
	w.parts = append(w.parts, component{})
	w.errs = append(w.errs, nil)
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		c, err := w.u.uploadPart(w.ctx, nil, i, w.src, int64(i)*w.partSize, size)
		w.mu.Lock()
		w.parts[i], w.errs[i] = c, err
		w.mu.Unlock()
	}()
}

// Commit uploads the parts not started yet, waits for all of them and composes them into
// name under wo's precondition, content type and metadata. size must be the content's size
// and every byte of it must have been reported to Wrote, in order. The temporary objects are
// deleted before Commit returns, whatever the outcome; the writer cannot be used again.
func (w *PartWriter) Commit(ctx context.Context, name string, size int64, wo store.WriteOptions) (store.Attrs, error) {
	defer w.finish()
	w.mu.Lock()
	if w.broken || w.end != size {
		end, broken := w.end, w.broken
		w.mu.Unlock()
		return store.Attrs{}, fmt.Errorf("upload %q: the parts written in order cover %d of %d bytes (broken: %v)", name, end, size, broken)
	}
	for off := int64(len(w.parts)) * w.partSize; off < size; off += w.partSize {
		w.startLocked(min(w.partSize, size-off))
	}
	crc := w.crc
	w.mu.Unlock()

	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return store.Attrs{}, fmt.Errorf("upload %q: %w", name, ctx.Err())
	}
	w.mu.Lock()
	parts, errs := append([]component(nil), w.parts...), append([]error(nil), w.errs...)
	w.mu.Unlock()
	for _, err := range errs {
		if err != nil {
			return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
		}
	}
	if whole := combine(name, parts); whole.size != size || whole.crc != crc {
		return store.Attrs{}, fmt.Errorf("upload %q: the parts hold %d bytes with CRC32C %08x; %d bytes with %08x were written",
			name, whole.size, whole.crc, size, crc)
	}
	return w.u.assemble(ctx, name, parts, wo)
}

// Abort stops the part uploads and deletes every temporary object, in the background. It is
// safe to call more than once, and after Commit (then it does nothing).
func (w *PartWriter) Abort() {
	w.mu.Lock()
	w.broken = true
	w.mu.Unlock()
	go w.finish()
}

// finish cancels the part uploads still running, waits for them and deletes the temporary
// objects; only its first call does anything.
func (w *PartWriter) finish() {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
		w.u.cleanup(context.Background())
	})
}
