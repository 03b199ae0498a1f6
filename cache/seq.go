package cache

import "time"

// objectID names one object generation for access-pattern tracking.
type objectID struct {
	bucket, name string
	gen          int64
}

const (
	// maxStreams is how many concurrent sequential readers of one object generation are told
	// apart. Further readers share streams, which only makes them look sequential sooner.
	maxStreams = 8
	// maxSeqWindow is how far a read may start from where a stream last ended and still
	// continue it. The kernel keeps several readahead requests of up to max_read (1 MiB) in
	// flight and go-fuse serves them concurrently, so a sequential reader's requests arrive
	// slightly out of order; 1 MiB either side covers that without taking nearby random reads
	// for a stream. With chunks smaller than 4 MiB the window is a quarter chunk.
	maxSeqWindow = 1 << 20
	// maxSeqSkip is how far past where an established stream (started at 0, or continued
	// twice) ended a read may start and still continue it (at most half a chunk; a stream is
	// established within maxSeqWindow, so random readers are told apart as before): on a fast
	// link the kernel's concurrent readahead requests arrive further apart than maxSeqWindow,
	// and a reader that skips a few MiB forward (a record it does not need) keeps its stream
	// and its window rather than start a new one at one chunk.
	maxSeqSkip = 4 << 20
)

// stream is one reader's position in an object.
type stream struct {
	end     int64       // highest end offset read so far
	matches int         // reads that continued the stream after it started
	fromTop bool        // the stream started at offset 0
	used    uint64      // last-use tick, to replace the least recently used stream
	last    time.Time   // when it was last read
	win     windowState // the chunks prefetched ahead of the reader (see nextWindow)
	epoch   int         // the generation's Cache.genEpoch when the stream started (see checkEnd)
}

// streams tracks the sequential readers of one object generation.
type streams struct {
	s    [maxStreams]stream
	n    int
	tick uint64
}

// observe records a read of [off, end) of obj. seq reports that it continues a stream (or
// starts one at offset 0): it is served by whole chunks. window is the number of chunks to
// prefetch after the one the read ends in: 0 until the stream is established (started at
// offset 0, or continued at least twice), then as nextWindow says. s is the stream, for
// noteWait and checkEnd (nil when seq is false).
func (c *Cache) observe(obj Object, off, end int64) (seq bool, window int, s *stream) {
	id := objectID{obj.Bucket, obj.Name, obj.Generation}
	now := time.Now()
	cs := c.opts.ChunkSize
	c.mu.Lock()
	epoch := c.genEpoch[id]
	c.mu.Unlock()
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	st, ok := c.seq.Get(id)
	if !ok {
		st = &streams{}
		c.seq.Add(id, st)
	}
	st.tick++
	near, skip := min(maxSeqWindow, cs/4), min(maxSeqSkip, cs/2)
	// The read continues the stream whose end is nearest (two readers of one object can both
	// be in reach: the one that read up to here is the one reading on), a stream already past
	// the read counting four times its distance (a reader reads on from where it is; one
	// behind its end is out of order, or another reader).
	var best *stream
	for i := range st.s[:st.n] {
		s := &st.s[i]
		reach := near
		if s.fromTop || s.matches >= 2 {
			reach = skip // an established stream
		}
		if off >= s.end-near && off <= s.end+reach && (best == nil || gap(off, s.end) < gap(off, best.end)) {
			best = s
		}
	}
	if s := best; s != nil {
		newChunk := (end-1)/cs > (s.end-1)/cs
		s.end = max(s.end, end)
		s.matches++
		s.used = st.tick
		if now.Sub(s.last) > idleReset {
			s.win = windowState{size: 1} // the reader paused: start small again
		}
		s.last = now
		if !s.fromTop && s.matches < 2 {
			return true, 0, s
		}
		if s.win.size == 0 {
			s.win = windowState{size: 1}
		}
		if newChunk {
			nextWindow(&s.win, c.maxWindow)
		}
		return true, min(s.win.size, c.maxWindow), s
	}
	slot := st.n
	if st.n < maxStreams {
		st.n++
	} else {
		slot = 0
		for i := range st.s {
			if st.s[i].used < st.s[slot].used {
				slot = i
			}
		}
	}
	st.s[slot] = stream{end: end, fromTop: off == 0, used: st.tick, last: now, epoch: epoch}
	if off != 0 {
		return false, 0, nil
	}
	st.s[slot].win = windowState{size: 1}
	return true, min(1, c.maxWindow), &st.s[slot]
}

// noteWait records that the reader of stream s waited for bytes to arrive.
func (c *Cache) noteWait(s *stream) {
	if s == nil {
		return
	}
	c.seqMu.Lock()
	s.win.waited = true
	c.seqMu.Unlock()
}

// startEpoch returns the generation epoch stream s started in (-1 for no stream).
func (c *Cache) startEpoch(s *stream) int {
	if s == nil {
		return -1
	}
	c.seqMu.Lock()
	defer c.seqMu.Unlock()
	return s.epoch
}

// gap is how far a read at off is from continuing a stream that ended at end.
func gap(off, end int64) int64 {
	if off >= end {
		return off - end
	}
	return 4 * (end - off)
}
