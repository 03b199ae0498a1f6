package fs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// A partStream uploads the parts of a file written sequentially from offset 0 while it is
// being written, so that close only uploads the tail part and composes: a big checkpoint does
// not wait for its whole upload at close.
//
// It starts with the first write at offset 0 of an empty staged file (a new file, or one
// truncated to 0). Once the file reaches the compose threshold, every completed part is
// uploaded in the background as a temporary object under .plxfs-tmp/<owner>-<random>/, with
// at most Upload.Workers parts in flight for the whole filesystem. Any other write (an earlier
// offset, a gap), a truncate or an unlink abandons the stream: its parts are deleted and the
// close uploads the staged file as usual. At close (sync) the remaining parts are uploaded and
// composed (32 sources per compose, nested for more) into the object, under the same
// generation precondition and with the CRC32C of the whole content, computed as the bytes were
// written. If anything fails, sync falls back to a normal upload of the staged file.
type partStream struct {
	fsys     *FS
	conn     *conn
	dir      string // temporary directory of the parts, relative to the connection view
	partSize int64
	src      io.ReaderAt // the staging file
	ctx      context.Context
	cancel   context.CancelFunc

	// Guarded by the owning fileNode's mu.
	end      int64  // bytes [0, end) were written in order
	crc      uint32 // CRC32C of [0, end)
	launched int    // parts whose upload was started
	broken   bool

	wg sync.WaitGroup
	// mu guards the fields below; it is a leaf lock.
	mu      sync.Mutex
	parts   []streamPart
	created []string // every temporary object name written or attempted
}

type streamPart struct {
	name string
	size int64
	crc  uint32
	err  error
}

// streaming reports whether uploads of big files start while they are written.
func (f *FS) streaming() bool {
	return !f.opts.ReadOnly && f.opts.Upload.ComposeThreshold >= 0
}

func (f *FS) newPartStream(c *conn, src io.ReaderAt) *partStream {
	var r [8]byte
	_, _ = rand.Read(r[:])
	owner := strings.NewReplacer("/", "_", "\x00", "_").Replace(f.uploadOwner())
	ctx, cancel := context.WithCancel(context.Background())
	return &partStream{
		fsys: f, conn: c, src: src, ctx: ctx, cancel: cancel,
		dir:      transfer.TempDir + "/" + owner + "-" + hex.EncodeToString(r[:]),
		partSize: f.partSize(),
	}
}

func (f *FS) uploadOwner() string {
	if f.opts.Upload.Owner == "" {
		return "plxfs"
	}
	return f.opts.Upload.Owner
}

func (f *FS) partSize() int64 {
	if f.opts.Upload.PartSize > 0 {
		return f.opts.Upload.PartSize
	}
	return transfer.DefaultPartSize
}

func (f *FS) composeThreshold() int64 {
	if f.opts.Upload.ComposeThreshold > 0 {
		return f.opts.Upload.ComposeThreshold
	}
	return transfer.DefaultComposeThreshold
}

// wroteLocked records a write of data at off; the fileNode's mu is held. It returns false when
// the write breaks the sequence (the caller abandons the stream).
func (ps *partStream) wroteLocked(data []byte, off int64) bool {
	if ps.broken || off != ps.end {
		return false
	}
	ps.crc = crc32.Update(ps.crc, crc32c.Table, data)
	ps.end += int64(len(data))
	if ps.end < ps.fsys.composeThreshold() {
		return true
	}
	for int64(ps.launched+1)*ps.partSize <= ps.end {
		ps.launchLocked(ps.launched, ps.partSize)
	}
	return true
}

// launchLocked starts the upload of part i (size bytes at i*partSize) from the write path,
// counting it as launched; the owning fileNode's mu is held.
func (ps *partStream) launchLocked(i int, size int64) {
	ps.launched++
	ps.launchPart(i, size)
}

// upload uploads one part, waiting for a filesystem-wide slot first.
func (ps *partStream) upload(i int, off, size int64) (streamPart, error) {
	select {
	case ps.fsys.partSlots <- struct{}{}:
	case <-ps.ctx.Done():
		return streamPart{}, ps.ctx.Err()
	}
	defer func() { <-ps.fsys.partSlots }()
	name := fmt.Sprintf("%s/part-%05d", ps.dir, i)
	ps.track(name)
	opts := ps.fsys.opts.Upload
	opts.ComposeThreshold, opts.Workers = -1, 1
	section := io.NewSectionReader(ps.src, off, size)
	a, err := transfer.Upload(ps.ctx, ps.conn.view, name, section, size, store.WriteOptions{}, opts)
	if err != nil {
		return streamPart{}, err
	}
	crc := a.CRC32C
	if !a.HasCRC32C {
		h := crc32.New(crc32c.Table)
		if _, err := io.Copy(h, io.NewSectionReader(ps.src, off, size)); err != nil {
			return streamPart{}, err
		}
		crc = h.Sum32()
	}
	return streamPart{name: name, size: size, crc: crc}, nil
}

func (ps *partStream) track(name string) {
	ps.mu.Lock()
	ps.created = append(ps.created, name)
	ps.mu.Unlock()
}

// finish uploads what is left, composes the parts into the object at p and removes the
// temporary objects. The staging file's ioMu is held exclusively (no write can happen).
func (ps *partStream) finish(ctx context.Context, p string, size int64, wo store.WriteOptions, end int64, crc uint32, launched int) (store.Attrs, error) {
	defer ps.discard()
	if end != size {
		return store.Attrs{}, fmt.Errorf("streamed upload covers %d of %d bytes", end, size)
	}
	// The tail: whatever follows the last full part, as one last part.
	for off := int64(launched) * ps.partSize; off < size; off += ps.partSize {
		ps.launchPart(launched, min(ps.partSize, size-off))
		launched++
	}
	done := make(chan struct{})
	go func() { ps.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return store.Attrs{}, ctx.Err()
	}
	ps.mu.Lock()
	parts := append([]streamPart(nil), ps.parts...)
	ps.mu.Unlock()
	var sum uint32
	var total int64
	for i, part := range parts {
		if part.err != nil {
			return store.Attrs{}, fmt.Errorf("part %d: %w", i, part.err)
		}
		sum = crc32c.Combine(sum, part.crc, part.size)
		total += part.size
	}
	if total != size || sum != crc {
		return store.Attrs{}, fmt.Errorf("streamed parts hold %d bytes with CRC32C %08x; the file has %d bytes with %08x", total, sum, size, crc)
	}
	names := make([]string, len(parts))
	sizes := make([]int64, len(parts))
	crcs := make([]uint32, len(parts))
	for i, part := range parts {
		names[i], sizes[i], crcs[i] = part.name, part.size, part.crc
	}
	// Nest composes until at most 32 sources remain.
	for depth := 1; len(names) > maxComposeSources; depth++ {
		var err error
		if names, sizes, crcs, err = ps.composeLevel(ctx, depth, names, sizes, crcs); err != nil {
			return store.Attrs{}, err
		}
	}
	wo.CRC32C, wo.HasCRC32C = crc, true
	a, err := ps.conn.view.Compose(ctx, p, names, wo)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("compose %d parts: %w", len(parts), err)
	}
	if a.Size != size || (a.HasCRC32C && a.CRC32C != crc) {
		return store.Attrs{}, fmt.Errorf("composed object has %d bytes, CRC32C %08x; sent %d, %08x", a.Size, a.CRC32C, size, crc)
	}
	return a, nil
}

// launchPart starts the upload of part i (size bytes at i*partSize) in the background; its
// outcome lands in ps.parts[i]. finish's tail parts call it directly (sync holds the stage).
func (ps *partStream) launchPart(i int, size int64) {
	ps.mu.Lock()
	ps.parts = append(ps.parts, streamPart{size: size})
	ps.mu.Unlock()
	ps.wg.Add(1)
	go func() {
		defer ps.wg.Done()
		part, err := ps.upload(i, int64(i)*ps.partSize, size)
		ps.mu.Lock()
		part.err = err
		ps.parts[i] = part
		ps.mu.Unlock()
	}()
}

// maxComposeSources is GCS's limit on the sources of one compose.
const maxComposeSources = 32

// composeLevel composes groups of 32 components into intermediate composites.
func (ps *partStream) composeLevel(ctx context.Context, depth int, names []string, sizes []int64, crcs []uint32) ([]string, []int64, []uint32, error) {
	n := (len(names) + maxComposeSources - 1) / maxComposeSources
	outN, outS, outC := make([]string, n), make([]int64, n), make([]uint32, n)
	g, gctx := errgroup.WithContext(ctx)
	for j := 0; j < n; j++ {
		lo, hi := j*maxComposeSources, min((j+1)*maxComposeSources, len(names))
		outN[j] = fmt.Sprintf("%s/compose-%d-%05d", ps.dir, depth, j)
		for k := lo; k < hi; k++ {
			outC[j] = crc32c.Combine(outC[j], crcs[k], sizes[k])
			outS[j] += sizes[k]
		}
		ps.track(outN[j])
		g.Go(func() error {
			_, err := ps.conn.view.Compose(gctx, outN[j], names[lo:hi], store.WriteOptions{CRC32C: outC[j], HasCRC32C: true})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, nil, fmt.Errorf("compose intermediate parts: %w", err)
	}
	return outN, outS, outC, nil
}

// abandon stops the stream (a write out of sequence, a truncate, an unlink) and deletes its
// parts in the background.
func (ps *partStream) abandonLocked() {
	if ps.broken {
		return
	}
	ps.broken = true
	go ps.discard()
}

// discard cancels part uploads still running, waits for them, and deletes every temporary
// object of the stream (on a context of its own: cleanup outlives the caller's).
func (ps *partStream) discard() {
	ps.cancel()
	ps.wg.Wait()
	ps.mu.Lock()
	todo := append([]string(nil), ps.created...)
	ps.created = nil
	ps.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for _, name := range todo {
		g.Go(func() error {
			if err := deletePart(gctx, ps.conn.view, name); err != nil {
				ps.fsys.log.Warn("could not delete a temporary upload part (the next start removes it)", "connection", ps.conn.name, "object", name, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}

// deletePart deletes a temporary part, retrying: the store does not retry a delete without a
// generation (it is not idempotent in general), but deleting a part twice is harmless — a part
// already gone counts as deleted.
func deletePart(ctx context.Context, b store.Bucket, name string) error {
	var err error
	for attempt := range 5 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return err
			case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
			}
		}
		err = b.Delete(ctx, name, 0)
		if err == nil || errors.Is(err, store.ErrNotExist) {
			return nil
		}
	}
	return err
}
