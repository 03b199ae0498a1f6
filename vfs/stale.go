package vfs

import (
	"context"
	"errors"
	"time"

	"github.com/plxfs/plxfs/store"
)

// Stale metadata. A lookup or stat whose revalidation the backend does not answer (a stall
// given up by the hedging, --op-timeout, an open circuit, a 5xx, a network error) is answered
// from what the mount last knew of the name, when it knows anything: the registered node's
// info, else the lookup cache's expired entry. So a file whose bytes are cached keeps being
// served through a stall or an outage (reads are pinned to the generation it knew, and the
// cache has its bytes), and so do the directories above it. An answer of the backend (not
// found, precondition, permission) is never overridden, nor is a call the caller
// interrupted. Each such answer is counted (Observer.StaleServed) and logged (rate-limited:
// staleLogEvery).

// staleLogEvery bounds how often serving stale metadata is logged: once, then a summary line
// at most this often while it goes on.
const staleLogEvery = 10 * time.Second

// noAnswer reports whether err is a failure to get the backend's answer, rather than an answer
// or the caller's own interruption.
func noAnswer(ctx context.Context, err error) bool {
	return err != nil && ctx.Err() == nil &&
		!errors.Is(err, store.ErrNotExist) && !errors.Is(err, store.ErrPrecondition) &&
		!errors.Is(err, store.ErrPermission) && !errors.Is(err, context.Canceled)
}

// lastKnown is what the connection last knew of the name at p, and when it learnt it: the
// registered node's info (a file that has a generation), else the lookup cache's entry,
// however old.
func (c *Conn) lastKnown(p string) (Info, time.Time, bool) {
	c.mu.Lock()
	n := c.nodes[p]
	c.mu.Unlock()
	switch n := n.(type) {
	case *File:
		n.mu.Lock()
		info, at := n.currentLocked(), n.infoAt
		n.mu.Unlock()
		if info.Gen != 0 {
			return info, at, true
		}
	case *Dir:
		n.mu.Lock()
		info, at := n.info, n.infoAt
		n.mu.Unlock()
		info.Kind = KindDir
		return info, at, true
	case *Leaf:
		return n.Attr(), time.Time{}, true
	}
	return c.fs.meta.Last(MetaKey(c.Name, p))
}

// servedStale counts and logs an answer from stale metadata: what was known of p (learnt at
// at) is served because its revalidation failed with err.
func (f *FS) servedStale(c *Conn, p string, at time.Time, err error) {
	f.cfg.Observer.StaleServed()
	now := f.Now()
	f.mu.Lock()
	f.staleSince++
	due := now.Sub(f.staleLogged) >= staleLogEvery
	n := f.staleSince
	if due {
		f.staleLogged, f.staleSince = now, 0
	}
	f.mu.Unlock()
	if !due {
		return
	}
	age := "unknown"
	if !at.IsZero() {
		age = now.Sub(at).Round(time.Second).String()
	}
	f.log.Warn("the backend did not answer: serving what the mount last knew, not revalidated",
		"connection", c.Name, "path", p, "known_for", age, "stale_answers", n, "err", err)
}
