package vfs

import "sync"

// Pin is the object generation a handle reads, with what its reads are checked against.
type Pin struct {
	Gen, Size int64
	CRC       uint32
	HasCRC    bool
	DataGen   int64 // Info.DataGen of Gen
}

// Mode is how the kernel reads through a handle.
type Mode int

const (
	// Cached: reads come to plxfs (through the chunk cache, or the staging file of a file
	// being written), and the kernel keeps what it read in its page cache.
	Cached Mode = iota
	// Passthrough: the kernel reads the cache's data file of the pinned generation itself
	// (FUSE passthrough), without plxfs.
	Passthrough
)

func (m Mode) String() string {
	if m == Passthrough {
		return "passthrough"
	}
	return "cached"
}

// handleState is where a handle is in its life.
type handleState int

const (
	reserved handleState = iota // a passthrough open under way: counted, not yet pinned
	open                        // the kernel has it
	flushed                     // a close(2) came: its release is most likely on its way
	released                    // gone
)

// Handle is one open handle's place in its file's Opens. Its fields are guarded by Opens.mu.
type Handle struct {
	mode  Mode
	write bool // may write: the file is staged while a writer is open
	state handleState
}

// Mode is how the kernel reads through h.
func (h *Handle) Mode() Mode { return h.mode }

// Opens is the open handles of one file and the mode they read in, as a state machine. The
// kernel admits no other mode beside a passthrough open of an inode (a later page-cached open
// fails with EIO), and no passthrough beside page-cached opens; so passthrough is chosen only
// when every open handle is a passthrough handle, and then every reader joins them, on their
// generation. The kernel sends a handle's release asynchronously after its last close, so a
// reader may wait (Join answers Wait) for the releases of handles already flushed rather than
// settle for the page cache or an old generation.
//
// Transitions of a handle: Join or OpenCached (→ reserved or open); Settle (reserved → open, or
// gone); Flush (open → flushed, idempotent); Release (→ released). Every release and settle
// closes the channel waiters hold: waits are conditions, never polling.
//
// mu is a leaf lock (see the package's lock order): every method but none blocks, and a caller
// may hold its own node lock around them, which makes a decision here atomic with its own
// state (File holds its mu around Join, OpenCached, Settle and Release).
type Opens struct {
	mu        sync.Mutex
	handles   int           // open handles, reservations included
	writers   int           // handles that may write, and holds (Hold)
	pt        int           // passthrough handles, reservations included
	ptPin     Pin           // the generation every passthrough handle reads
	flushed   int           // page-cached handles flushed and not released
	ptFlushed int           // passthrough handles flushed and not released
	changed   chan struct{} // closed (then replaced) by the next release or settle
}

// changedLocked is a channel the next release or settle closes.
func (o *Opens) changedLocked() <-chan struct{} {
	if o.changed == nil {
		o.changed = make(chan struct{})
	}
	return o.changed
}

// broadcastLocked wakes every waiter.
func (o *Opens) broadcastLocked() {
	if o.changed != nil {
		close(o.changed)
		o.changed = nil
	}
}

// OpenCached registers a page-cached handle; write: it may write.
func (o *Opens) OpenCached(write bool) *Handle {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.openCachedLocked(write)
}

func (o *Opens) openCachedLocked(write bool) *Handle {
	o.handles++
	if write {
		o.writers++
	}
	return &Handle{mode: Cached, write: write, state: open}
}

// Step is what Join decided. Exactly one of its cases holds:
//   - Wait != nil: nothing is registered; wait for Wait (or the caller's deadline) and Join
//     again.
//   - Handle.Mode() == Passthrough: a reservation of generation Pin is registered; the caller
//     opens the cache's data file of Pin and calls Settle.
//   - Handle.Mode() == Cached: a page-cached reader is registered.
type Step struct {
	Handle *Handle
	Pin    Pin
	Wait   <-chan struct{}
}

// Join decides how a reader opens, cur being the generation the file's node knows now, and
// registers it. A reader joins the passthrough handles when every open handle is one and they
// read cur (or, once it may wait no more, when no page-cached handle is open; it then reads
// their generation). When the handles in the way have all been flushed and mayWait is set, it
// answers Wait rather than settle for the page cache or the old generation. allowPT false
// (or a generation that is empty or not uploaded) registers a page-cached reader.
func (o *Opens) Join(cur Pin, mayWait, allowPT bool) Step {
	o.mu.Lock()
	defer o.mu.Unlock()
	others := o.handles - o.pt
	oldPT := o.pt > 0 && o.ptPin.Gen != cur.Gen
	joinable := others == 0 && !oldPT
	if !joinable {
		if mayWait && others == o.flushed && (!oldPT || o.ptFlushed == o.pt) {
			return Step{Wait: o.changedLocked()}
		}
		joinable = others == 0
	}
	pin := cur
	if o.pt > 0 {
		pin = o.ptPin
	}
	if !joinable || !allowPT || pin.Gen == 0 || pin.Size == 0 {
		return Step{Handle: o.openCachedLocked(false)}
	}
	o.pt++ // reserved now, so that concurrent opens see it
	o.handles++
	o.ptPin = pin
	return Step{Handle: &Handle{mode: Passthrough, state: reserved}, Pin: pin}
}

// Settle ends a passthrough reservation: ok, the caller holds the data file of its generation
// (the handle is open); otherwise the reservation is dropped. A dropped reservation becomes a
// page-cached reader when no passthrough handle is left (cached); otherwise another
// passthrough open holds or is taking its pin, and the caller waits for retry (closed by the
// next settle or release) and joins again.
func (o *Opens) Settle(h *Handle, ok bool) (cached bool, retry <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.broadcastLocked() // first: retry below is the next change's channel
	if ok {
		h.state = open
		return false, nil
	}
	o.pt--
	o.handles--
	h.state = released
	if o.pt == 0 {
		*h = *o.openCachedLocked(false)
		return true, nil
	}
	return false, o.changedLocked()
}

// Flush records that a close(2) came for h. It is idempotent (a dup'ed descriptor closes more
// than once).
func (o *Opens) Flush(h *Handle) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.state != open {
		return
	}
	h.state = flushed
	if h.mode == Passthrough {
		o.ptFlushed++
	} else {
		o.flushed++
	}
}

// Release ends h and wakes the waiters. It reports how many handles and writers are left.
func (o *Opens) Release(h *Handle) (handles, writers int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.state == released {
		return o.handles, o.writers
	}
	switch {
	case h.state == flushed && h.mode == Passthrough:
		o.ptFlushed--
	case h.state == flushed:
		o.flushed--
	}
	h.state = released
	o.handles--
	if h.write {
		o.writers--
	}
	if h.mode == Passthrough {
		o.pt--
	}
	o.broadcastLocked()
	return o.handles, o.writers
}

// Hold counts one more writer without a handle (a truncate(2) by path keeps the staging file
// while it uses it); Unhold ends it and reports the writers left.
func (o *Opens) Hold() {
	o.mu.Lock()
	o.writers++
	o.mu.Unlock()
}

// Unhold ends a Hold and reports how many writers are left.
func (o *Opens) Unhold() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.writers--
	return o.writers
}

// Writers is the number of handles that may write, and holds.
func (o *Opens) Writers() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.writers
}
