package vfs

// Successors is the "a generation was replaced" bookkeeping of one file: for each generation
// this mount replaced (by an upload, or by the copy of a rename), what replaced it, so that
// handles pinned to the old generation read the new bytes (read-your-writes) instead of a
// generation that is gone. V is what the caller keeps about a generation. The zero value is
// empty and ready. It has no lock: its owner guards it (File.mu).
type Successors[V any] struct {
	next map[int64]successor[V]
}

type successor[V any] struct {
	gen int64
	v   V
}

// Replaced records that generation old was replaced by generation gen, described by v. A
// file never uploaded (old 0), or a "replacement" by the same generation, records nothing.
func (s *Successors[V]) Replaced(old, gen int64, v V) {
	if old == 0 || old == gen {
		return
	}
	if s.next == nil {
		s.next = map[int64]successor[V]{}
	}
	s.next[old] = successor[V]{gen, v}
}

// Follow returns what finally replaced generation gen, following replacements of
// replacements; ok is false when gen was not replaced.
func (s *Successors[V]) Follow(gen int64) (last int64, v V, ok bool) {
	last = gen
	for {
		n, found := s.next[last]
		if !found || n.gen == last {
			return last, v, ok
		}
		last, v, ok = n.gen, n.v, true
	}
}

// Clear forgets every replacement: no handle pinned to an old generation is open any more.
func (s *Successors[V]) Clear() { s.next = nil }
