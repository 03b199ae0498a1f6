package transfer

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
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
)

// minChunk is the resumable-upload granularity GCS requires (chunks are multiples of 256 KiB).
const minChunk = 256 << 10

// maxComponents is GCS's limit on the components of one composite object; parts are made
// bigger than PartSize when an object would otherwise need more.
const maxComponents = 1024

// Upload writes size bytes of src as the object name, under the precondition wo.IfGen, and
// returns the new object's attributes. The CRC32C of the content is computed first and sent
// with the object (wo.CRC32C is overwritten), and the result is checked against it.
//
// Objects of at least opts.ComposeThreshold bytes are uploaded as parallel parts under
// TempDir/<Owner>-<random>/ and assembled with compose (32 sources per request, nested for
// more); the parts are deleted whether the upload succeeds or fails, and only the final
// compose carries wo's precondition, content type and metadata. Smaller objects are one
// chunked resumable upload. Either way nothing is visible under name until the upload is
// complete.
//
// Retries of individual requests are the store's job. A part that still fails with an error
// other than cancellation or a precondition is restarted from its start (under a new part
// name, so its own precondition stays "does not exist"), up to 3 attempts in all.
func Upload(ctx context.Context, b store.Bucket, name string, src io.ReaderAt, size int64, wo store.WriteOptions, opts Options) (store.Attrs, error) {
	opts = opts.withDefaults()
	if opts.ComposeThreshold > 0 && size >= opts.ComposeThreshold && size > opts.PartSize {
		return uploadComposed(ctx, b, name, src, size, wo, opts)
	}
	if err := opts.acquire(ctx); err != nil {
		return store.Attrs{}, err
	}
	defer opts.slots.Release(1)
	crc, err := sectionCRC(src, 0, size)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: read source: %w", name, err)
	}
	wo.CRC32C, wo.HasCRC32C = crc, true
	if wo.ChunkSize <= 0 {
		wo.ChunkSize = chunkFor(size, opts.ChunkSize)
	}
	a, err := writeObject(ctx, b, name, io.NewSectionReader(src, 0, size), wo, opts.Progress.Bytes)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
	}
	if err := checkResult(ctx, b, a, size, crc); err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
	}
	return a, nil
}

// chunkFor picks the resumable chunk size for an upload of size bytes. Content that fits in
// one chunk gets a chunk just bigger than itself (rounded up to 256 KiB), so that the client
// sees the end of the content within the first chunk and sends it in one request instead of
// a full chunk plus an empty final one; the store client buffers a whole chunk per upload,
// so this also keeps small uploads small. Bigger content uses the configured chunk. Memory
// per upload is therefore at most chunk + 256 KiB.
func chunkFor(size int64, chunk int) int {
	if size >= int64(chunk)+minChunk {
		return chunk
	}
	return int((size/minChunk + 1) * minChunk)
}

// writeObject streams r into a new generation of name; report gets the bytes sent.
func writeObject(ctx context.Context, b store.Bucket, name string, r io.Reader, wo store.WriteOptions, report func(int64)) (store.Attrs, error) {
	w, err := b.NewWriter(ctx, name, wo)
	if err != nil {
		return store.Attrs{}, err
	}
	if _, err := io.Copy(w, &countingReader{r: r, report: report}); err != nil {
		w.Abort()
		return store.Attrs{}, err
	}
	a, err := w.Commit()
	if err != nil {
		w.Abort()
		return store.Attrs{}, err
	}
	return a, nil
}

// checkResult verifies the server's view of a new object against what was sent. A mismatch
// (a server that accepted bytes it should have refused) deletes the object it created.
func checkResult(ctx context.Context, b store.Bucket, a store.Attrs, size int64, crc uint32) error {
	var bad string
	switch {
	case a.Size != size:
		bad = fmt.Sprintf("server stored %d bytes, sent %d", a.Size, size)
	case a.HasCRC32C && a.CRC32C != crc:
		bad = fmt.Sprintf("server CRC32C %08x, sent %08x", a.CRC32C, crc)
	default:
		return nil
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	if err := b.Delete(dctx, a.Name, a.Generation); err != nil && !errors.Is(err, store.ErrNotExist) {
		return fmt.Errorf("%s; deleting the bad object generation %d failed too: %v", bad, a.Generation, err)
	}
	return errors.New(bad + "; object deleted")
}

// sectionCRC is the CRC32C of src[off:off+n].
func sectionCRC(src io.ReaderAt, off, n int64) (uint32, error) {
	h := crc32.New(crc32c.Table)
	buf := make([]byte, 256<<10)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(src, off, n), buf); err != nil {
		return 0, err
	}
	return h.Sum32(), nil
}

// component is one part or intermediate composite of a composed upload.
type component struct {
	name string
	size int64
	crc  uint32
}

// composedUpload tracks the temporary objects of one composed upload.
type composedUpload struct {
	b    store.Bucket
	dir  string // TempDir/<owner>-<random>
	opts Options

	mu      sync.Mutex
	created []string // every temporary name written or attempted; guarded by mu
}

func (u *composedUpload) track(name string) {
	u.mu.Lock()
	u.created = append(u.created, name)
	u.mu.Unlock()
}

func uploadComposed(ctx context.Context, b store.Bucket, name string, src io.ReaderAt, size int64, wo store.WriteOptions, opts Options) (store.Attrs, error) {
	partSize := opts.PartSize
	if n := (size + partSize - 1) / partSize; n > maxComponents {
		partSize = (size + maxComponents - 1) / maxComponents
		partSize = (partSize + minChunk - 1) / minChunk * minChunk
	}
	nParts := int((size + partSize - 1) / partSize)
	u := &composedUpload{b: b, dir: TempDir + "/" + ownerDir(opts.Owner), opts: opts}
	defer u.cleanup(ctx)

	parts := make([]component, nParts)
	var g settled
	for i := range parts {
		off := int64(i) * partSize
		n := min(partSize, size-off)
		g.Go(func() error {
			c, err := u.uploadPart(ctx, &g, i, src, off, n)
			parts[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
	}

	a, err := u.assemble(ctx, name, parts, wo)
	if err != nil {
		return store.Attrs{}, err
	}
	opts.Logger.Debug("composed upload", "object", name, "bytes", size, "parts", nParts)
	return a, nil
}

// assemble composes parts, in order, into name under wo (its CRC32C is overwritten with the
// parts' combined one): nested composes of 32 sources until 32 or fewer remain, then the final
// compose, the only one that carries wo's precondition, and a check of the result.
func (u *composedUpload) assemble(ctx context.Context, name string, parts []component, wo store.WriteOptions) (store.Attrs, error) {
	u.opts.Progress.Composing(name, len(parts))
	level := parts
	for depth := 1; len(level) > maxComposeSources; depth++ {
		next, err := u.composeLevel(ctx, depth, level)
		if err != nil {
			return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
		}
		level = next
	}
	final := combine(name, level)
	wo.CRC32C, wo.HasCRC32C = final.crc, true
	if err := u.opts.acquire(ctx); err != nil {
		return store.Attrs{}, err
	}
	a, err := u.b.Compose(ctx, name, names(level), wo)
	u.opts.slots.Release(1)
	if err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: compose %d parts: %w", name, len(parts), err)
	}
	if err := checkResult(ctx, u.b, a, final.size, final.crc); err != nil {
		return store.Attrs{}, fmt.Errorf("upload %q: %w", name, err)
	}
	return a, nil
}

// uploadPart uploads src[off:off+n] as part i in one transfer slot, restarting it from its
// start on failures the store's retries did not absorb.
func (u *composedUpload) uploadPart(ctx context.Context, g *settled, i int, src io.ReaderAt, off, n int64) (component, error) {
	if err := u.opts.acquire(ctx); err != nil {
		return component{}, err
	}
	defer u.opts.slots.Release(1)
	if g.failed() {
		return component{}, nil // a sibling failed: the upload is over, start nothing
	}
	crc, err := sectionCRC(src, off, n)
	if err != nil {
		return component{}, fmt.Errorf("part %d: read source: %w", i, err)
	}
	wo := store.WriteOptions{CRC32C: crc, HasCRC32C: true, ChunkSize: chunkFor(n, u.opts.ChunkSize)}
	var lastErr error
	for attempt := range maxAttempts {
		pname := fmt.Sprintf("%s/part-%05d", u.dir, i)
		if attempt > 0 {
			pname = fmt.Sprintf("%s.r%d", pname, attempt)
		}
		u.track(pname)
		a, err := writeObject(ctx, u.b, pname, io.NewSectionReader(src, off, n), wo, nil)
		if err == nil {
			err = checkResult(ctx, u.b, a, n, crc)
		}
		if err == nil {
			u.opts.Progress.Bytes(n)
			return component{name: pname, size: n, crc: crc}, nil
		}
		lastErr = err
		if !restartable(ctx, err) || g.failed() {
			break
		}
		u.opts.Logger.Debug("restarting upload part", "part", pname, "attempt", attempt+1, "err", err)
	}
	return component{}, fmt.Errorf("part %d: %w", i, lastErr)
}

// composeLevel composes groups of 32 components into intermediate composites.
func (u *composedUpload) composeLevel(ctx context.Context, depth int, level []component) ([]component, error) {
	next := make([]component, (len(level)+maxComposeSources-1)/maxComposeSources)
	var g settled
	for j := range next {
		group := level[j*maxComposeSources : min((j+1)*maxComposeSources, len(level))]
		c := combine(fmt.Sprintf("%s/compose-%d-%05d", u.dir, depth, j), group)
		u.track(c.name)
		next[j] = c
		g.Go(func() error {
			if err := u.opts.acquire(ctx); err != nil {
				return err
			}
			defer u.opts.slots.Release(1)
			if g.failed() {
				return nil
			}
			a, err := u.b.Compose(ctx, c.name, names(group), store.WriteOptions{CRC32C: c.crc, HasCRC32C: true})
			if err != nil {
				return fmt.Errorf("compose %s: %w", c.name, err)
			}
			return checkResult(ctx, u.b, a, c.size, c.crc)
		})
	}
	return next, g.Wait()
}

// settled runs an upload's parallel writes. Unlike errgroup.WithContext, a failure does not
// cancel the writes in flight: it only stops new ones from starting. A cancelled write's
// outcome is unknown (the server may commit it after the client gave up, and then after the
// cleanup's listing), so cancelling siblings would leave parts behind; waiting for them
// instead costs at most one part per transfer slot. The caller's own cancellation still
// cancels everything.
type settled struct {
	g    errgroup.Group
	stop atomic.Bool
}

func (s *settled) Go(f func() error) {
	s.g.Go(func() error {
		err := f()
		if err != nil {
			s.stop.Store(true)
		}
		return err
	})
}

// failed reports whether a write failed; a nil *settled (a PartWriter's parts, each on its
// own) never has.
func (s *settled) failed() bool { return s != nil && s.stop.Load() }

// Wait waits for every write and returns the first error.
func (s *settled) Wait() error { return s.g.Wait() }

// cleanup deletes every temporary object of the upload, on a context that survives the
// caller's cancellation, then anything else left under its directory.
func (u *composedUpload) cleanup(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	u.mu.Lock()
	todo := append([]string(nil), u.created...)
	u.mu.Unlock()
	if len(todo) == 0 {
		return // nothing was written or attempted (names are tracked before their upload starts)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.opts.Workers)
	for _, n := range todo {
		g.Go(func() error {
			if err := deleteTemp(gctx, u.b, n); err != nil {
				u.opts.Logger.Warn("could not delete temporary upload part (CleanupParts removes it)", "object", n, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
	// A part whose commit raced with a cancellation may exist under a name we tracked but
	// deleted too early; a final listing catches it.
	if _, err := deleteUnder(ctx, u.b, u.dir+"/", func(store.Attrs) bool { return true }); err != nil {
		u.opts.Logger.Warn("could not list temporary upload parts", "dir", u.dir, "err", err)
	}
}

// deleteTemp deletes a temporary object, retrying: the store does not retry a delete without a
// generation (it is not idempotent in general), but deleting a part twice is harmless, and a
// part already gone counts as deleted.
func deleteTemp(ctx context.Context, b store.Bucket, name string) error {
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

// combine is the component that concatenates cs, named name.
func combine(name string, cs []component) component {
	out := component{name: name}
	for _, c := range cs {
		out.crc = crc32c.Combine(out.crc, c.crc, c.size)
		out.size += c.size
	}
	return out
}

func names(cs []component) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.name
	}
	return out
}

// restartable reports whether a part that failed with err is worth restarting: not when the
// caller gave up, and not when the object changed under a precondition or vanished.
func restartable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) &&
		!errors.Is(err, store.ErrPrecondition) && !errors.Is(err, store.ErrNotExist)
}

// ownerDir is "<owner>-<16 hex digits>" with slashes in owner replaced, so the owner can be
// recovered as everything before the last dash.
func ownerDir(owner string) string {
	var r [8]byte
	_, _ = rand.Read(r[:])
	return sanitizeOwner(owner) + "-" + hex.EncodeToString(r[:])
}

func sanitizeOwner(owner string) string {
	if owner == "" {
		owner = "plxfs"
	}
	return strings.NewReplacer("/", "_", "\x00", "_").Replace(owner)
}

// CleanupParts deletes temporary upload parts left under TempDir by a crashed or killed
// process: those of owner (whatever their age; pass "" for none) and, when olderThan > 0,
// anyone's parts last updated more than olderThan ago. It returns how many objects it
// deleted. Parts of a live upload with the same owner are deleted too, so run it before
// starting uploads.
func CleanupParts(ctx context.Context, b store.Bucket, owner string, olderThan time.Duration) (int, error) {
	own := ""
	if owner != "" {
		own = sanitizeOwner(owner)
	}
	now := time.Now()
	n, err := deleteUnder(ctx, b, TempDir+"/", func(a store.Attrs) bool {
		rest := strings.TrimPrefix(a.Name, TempDir+"/")
		dir, _, _ := strings.Cut(rest, "/")
		if i := strings.LastIndexByte(dir, '-'); i >= 0 && own != "" && dir[:i] == own {
			return true
		}
		return olderThan > 0 && !a.Updated.IsZero() && now.Sub(a.Updated) > olderThan
	})
	if err != nil {
		return n, fmt.Errorf("clean up temporary parts: %w", err)
	}
	return n, nil
}

// deleteUnder deletes every object under prefix that keep selects; missing objects are fine.
func deleteUnder(ctx context.Context, b store.Bucket, prefix string, sel func(store.Attrs) bool) (int, error) {
	deleted := 0
	err := walk(ctx, b, prefix, func(a store.Attrs) error {
		if !sel(a) {
			return nil
		}
		if err := b.Delete(ctx, a.Name, a.Generation); err != nil && !errors.Is(err, store.ErrNotExist) {
			return fmt.Errorf("delete %q: %w", a.Name, err)
		}
		deleted++
		return nil
	})
	return deleted, err
}

// walk calls fn for every object under prefix (no delimiter), page by page.
func walk(ctx context.Context, b store.Bucket, prefix string, fn func(store.Attrs) error) error {
	tok := ""
	for {
		p, err := b.List(ctx, store.ListOptions{Prefix: prefix, PageToken: tok})
		if err != nil {
			return fmt.Errorf("list %q: %w", prefix, err)
		}
		for _, a := range p.Objects {
			if err := fn(a); err != nil {
				return err
			}
		}
		if p.NextPageToken == "" {
			return nil
		}
		tok = p.NextPageToken
	}
}

// countingReader reports bytes read.
type countingReader struct {
	r      io.Reader
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && c.report != nil {
		c.report(int64(n))
	}
	return n, err
}
