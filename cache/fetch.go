package cache

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// Fetching a chunk into memory.
//
// A chunk is brought by one or more ranged GETs, its parts, sent at once: over a link where
// each request waits tens of milliseconds for its first byte and one connection carries a
// fraction of what the link can, one GET per 8 MiB chunk spends most of its time waiting and
// leaves the rest of the link idle. The part size follows the link (link.partSize): about the
// bytes one connection carries during one first-byte delay, so that a part spends about as
// long arriving as waiting, and the bytes in flight that fill the link stay small (a link
// needs about its bandwidth × (first-byte delay + one part's transfer time) in flight). On a
// local server (first byte within localFirstByte) a chunk is one GET: splitting buys nothing
// there and costs requests.
//
// Each part is read with one resume loop (downloadPart): a body that breaks off is continued
// from the byte where it stopped, up to maxResumes times. Readers are served the bytes of each
// part as they arrive (memChunk.arrivedLocked); the chunk's CRC32C is the parts' combined.

// fetchPart is one ranged GET of a chunk fetch: bytes [lo, hi) of the chunk.
type fetchPart struct {
	lo, hi int64
	filled int64  // bytes of the part arrived and published to readers; guarded by Cache.mu
	crc    uint32 // CRC32C of the part's bytes; owned by the part's goroutine until the fetch ends
}

const (
	// publishStep is how many newly arrived bytes a part accumulates before it wakes readers.
	publishStep = 256 << 10
	// minPart and partAlign bound and round the part size: below 1 MiB a request's own cost
	// (headers, a round trip of the server's work) starts to show.
	minPart   = 1 << 20
	partAlign = 256 << 10
	// localFirstByte is the first-byte delay below which the server counts as local (an
	// emulator, a proxy on the same host): chunks are fetched with one GET each.
	localFirstByte = 5 * time.Millisecond
	// linkSampleMin is the body size from which a GET's transfer rate is learnt: smaller
	// bodies are mostly first-byte delay.
	linkSampleMin = 256 << 10
)

// link learns the shape of the link to the Source from the GETs of chunk fetches: its
// first-byte delay, the shortest delay to a response among the last linkWindow GETs (a GET
// that waited for a new connection, or whose goroutine ran late on a busy machine, took
// longer, and the shortest is the link's own), and the transfer rate of one GET, a moving
// average (each new sample weighs 1/8) of its bytes over the time they took beyond that
// delay. Timing the body from its response would not do: bytes that reached the socket
// while the goroutine was not running arrive at once and make the link look faster than it is.
type link struct {
	mu    sync.Mutex // guards the fields below; a leaf lock (taken under Cache.mu)
	delay [linkWindow]time.Duration
	n     int   // samples in delay
	rate  int64 // bytes per second of one GET; 0 until the first sample
}

// linkWindow is how many recent GETs the first-byte delay is the shortest of.
const linkWindow = 32

// observe records one GET: first is its delay to the response, body its bytes, and total the
// time from the request to its last byte.
func (l *link) observe(first time.Duration, body int64, total time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.delay[l.n%linkWindow] = max(first, time.Microsecond)
	l.n++
	if body < linkSampleMin {
		return
	}
	took := total - l.firstByteLocked()
	if took <= 0 {
		return
	}
	sample := int64(float64(body) / took.Seconds())
	if l.rate == 0 {
		l.rate = sample
	} else {
		l.rate += (sample - l.rate) / 8
	}
}

func (l *link) firstByteLocked() time.Duration {
	var d time.Duration
	for _, s := range l.delay[:min(l.n, linkWindow)] {
		if d == 0 || s < d {
			d = s
		}
	}
	return d
}

// shape returns the link's first-byte delay and one GET's rate (zeros before any sample).
func (l *link) shape() (time.Duration, int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstByteLocked(), l.rate
}

// partSize is the size of the parts a chunk of chunk bytes is fetched in: the bytes one GET
// carries during one first-byte delay, rounded up to partAlign, within [minPart, chunk]. Before
// anything is learnt a chunk is fetched in four parts; on a local server in one.
func (l *link) partSize(chunk int64) int64 {
	ttfb, rate := l.shape()
	switch {
	case ttfb == 0 || rate == 0:
		return min(max(chunk/4, minPart), chunk)
	case ttfb < localFirstByte:
		return chunk
	}
	p := int64(float64(rate) * ttfb.Seconds())
	p = (p + partAlign - 1) / partAlign * partAlign
	return min(max(p, minPart), chunk)
}

// split cuts a chunk of n bytes into the parts it is fetched in (of fixed bytes each when
// fixed > 0: tests).
func (l *link) split(n, chunk, fixed int64) []fetchPart {
	size := l.partSize(chunk)
	if fixed > 0 {
		size = fixed
	}
	parts := make([]fetchPart, 0, ceilDiv(n, size))
	for lo := int64(0); lo < n; lo += size {
		parts = append(parts, fetchPart{lo: lo, hi: min(lo+size, n)})
	}
	return parts
}

// ErrChecksum is wrapped by read errors when the bytes received for a whole object did not
// match the CRC32C that GCS holds for it, after retries.
var ErrChecksum = errors.New("object bytes do not match their CRC32C")

// crcAttempts bounds how often a whole object whose bytes fail their CRC check is fetched.
const crcAttempts = 3

// runFetch fills m from src, checks it and hands it to the write-behind queue.
func (c *Cache) runFetch(ctx context.Context, src Source, m *memChunk) {
	defer c.wg.Done()
	defer m.cancel()
	var err error
	for attempt := 1; ; attempt++ {
		err = c.downloadParts(ctx, src, m)
		if err != nil || !m.whole || m.crc == m.expect {
			break
		}
		// Nothing was served or kept: only this fetch is retried.
		c.countMismatch(m.obj, fmt.Sprintf("whole-object read, attempt %d of %d; fetching again before serving a byte", attempt, crcAttempts), m.crc)
		if attempt == crcAttempts {
			err = fmt.Errorf("%w: gs://%s/%s generation %d, %d attempts", ErrChecksum, m.obj.Bucket, m.obj.Name, m.obj.Generation, crcAttempts)
			break
		}
		c.mu.Lock()
		for i := range m.parts {
			m.parts[i].filled, m.parts[i].crc = 0, 0
		}
		c.mu.Unlock()
	}
	if err == nil && (!m.whole || m.n != m.obj.Size) {
		// Noted before the fetch leaves stFetching: a reader that reaches the end of the object
		// waits for that (see final in serveParts) and must find this chunk's CRC counted.
		c.noteChunk(m.obj, m.k.Index, m.crc)
	}
	defer c.fetchesRunning.Add(-1) // after the write is queued (see waitIdle in the tests)
	c.mu.Lock()
	if err != nil {
		if m.waiters == 0 && ctx.Err() != nil && c.baseCtx.Err() == nil {
			m.move(stAbsent) // cancelled with nobody waiting (StopPrefetch)
		} else {
			m.err = err
			m.move(stFailed)
		}
		c.untableLocked(m)
		c.unrefLocked(m)
		c.mu.Unlock()
		return
	}
	m.move(stInMemory)
	c.unrefLocked(m)
	c.mu.Unlock()
	c.queueWrite(m)
}

// downloadParts fetches every part of m at once and sets m.crc. The first part that fails
// cancels the others: the chunk fails as a whole.
func (c *Cache) downloadParts(ctx context.Context, src Source, m *memChunk) error {
	if len(m.parts) == 1 {
		err := c.downloadPart(ctx, src, m, &m.parts[0])
		m.crc = m.parts[0].crc
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range m.parts {
		p := &m.parts[i]
		g.Go(func() error { return c.downloadPart(gctx, src, m, p) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	m.crc = 0
	for _, p := range m.parts {
		m.crc = crc32c.Combine(m.crc, p.crc, p.hi-p.lo)
	}
	return nil
}

// maxResumes bounds how often one part continues after a body that broke off (a reset, a
// truncated response, a stall the Source gave up on), from the byte where it stopped.
const maxResumes = 3

// downloadPart reads part p of m from src into m.buf, publishing progress to readers, and
// resumes a body that broke off from where it stopped. It checks the length: short (after
// resumes) and long bodies are errors.
func (c *Cache) downloadPart(ctx context.Context, src Source, m *memChunk, p *fetchPart) error {
	var done int64
	for resumes := 0; ; resumes++ {
		err := c.downloadFrom(ctx, src, m, p, &done)
		if err == nil || ctx.Err() != nil || resumes == maxResumes || errors.Is(err, ErrLongBody) || done == 0 && !retryable(err) {
			return err
		}
		c.resumes.Add(1)
	}
}

// retryable reports whether a failed request is worth sending again from the same offset:
// anything but a refusal to open the range (the Source retries those itself).
func retryable(err error) bool { return errors.Is(err, ErrShortBody) || errors.Is(err, errBodyBroke) }

var errBodyBroke = errors.New("response body broke off")

// downloadFrom sends one range request for the bytes of part p from *done on and copies them
// into m.buf.
func (c *Cache) downloadFrom(ctx context.Context, src Source, m *memChunk, p *fetchPart, done *int64) error {
	size := p.hi - p.lo
	off := m.k.off() + p.lo + *done
	want := size - *done
	c.fetches.Add(1)
	c.inFlight.Add(1)
	defer c.inFlight.Add(-1)
	n := want
	if off == 0 && want == m.obj.Size {
		// The whole object: asked for as such (no range), the request every server handles
		// best, and the one on which a GCS client checks the object's CRC32C itself.
		n = -1
	}
	start := time.Now()
	rc, err := src.NewRangeReader(ctx, m.obj.Name, m.obj.Generation, off, n)
	if err != nil {
		return fmt.Errorf("fetch bytes %d-%d: %w", off, off+want-1, err)
	}
	defer rc.Close()
	first := time.Now()
	from := *done
	published := *done
	dst := m.buf[p.lo:p.hi]
	for *done < size {
		k, rerr := rc.Read(dst[*done:])
		if k > 0 {
			p.crc = crc32.Update(p.crc, crc32c.Table, dst[*done:*done+int64(k)])
			*done += int64(k)
			c.fetched.Add(int64(k))
			// The last bytes are published after the length check below.
			if *done-published >= publishStep && *done < size {
				published = *done
				c.mu.Lock()
				p.filled = published
				m.notify()
				c.mu.Unlock()
			}
		}
		if rerr == io.EOF && *done < size {
			return fmt.Errorf("%w: got %d of %d bytes", ErrShortBody, *done, size)
		}
		if rerr != nil && rerr != io.EOF {
			return fmt.Errorf("%w at byte %d: %v", errBodyBroke, off+*done-from, rerr)
		}
	}
	var probe [1]byte
	if k, _ := io.ReadFull(rc, probe[:]); k > 0 {
		return fmt.Errorf("%w: more than the %d bytes asked for", ErrLongBody, want)
	}
	c.link.observe(first.Sub(start), *done-from, time.Since(start))
	c.mu.Lock()
	p.filled = size
	m.notify()
	c.mu.Unlock()
	return nil
}
