package vfs

import (
	"errors"
	"sync/atomic"
)

// Sentinels of the gate, rows of fs/errno.go's table (EROFS both).
var (
	ErrReadOnly = errors.New("read-only mount (--read-only)")
	ErrDraining = errors.New("the mount is shutting down (after SIGTERM) and takes no new changes")
)

// Gate says whether the mount takes new changes: not on a read-only mount, and not once it
// drains (StopWrites, after SIGTERM). Files already being written keep their staging files,
// whose changes still upload (at their close, and at unmount); everything new (creating,
// opening for write, a truncate or attribute change of a file nobody writes, namespace
// operations, a new staging file) is refused. It is safe for concurrent use.
type Gate struct {
	readOnly bool
	draining atomic.Bool
}

// NewGate returns the gate of a mount; readOnly refuses every change from the start.
func NewGate(readOnly bool) *Gate { return &Gate{readOnly: readOnly} }

// StopWrites starts the drain: from now on new changes are refused with ErrDraining.
func (g *Gate) StopWrites() { g.draining.Store(true) }

// Draining reports whether StopWrites was called.
func (g *Gate) Draining() bool { return g.draining.Load() }

// Refused is why the mount refuses new changes now (ErrReadOnly, ErrDraining), or nil.
func (g *Gate) Refused() error {
	switch {
	case g.readOnly:
		return ErrReadOnly
	case g.draining.Load():
		return ErrDraining
	}
	return nil
}
