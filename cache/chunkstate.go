package cache

import "fmt"

// chunkState is where one chunk of one object generation is in the read path. The states and
// the moves between them are all written down here, in chunkMoves; every change of a
// memChunk's state goes through memChunk.move, which refuses (panics on) any other move.
//
//	absent ──fetch──▶ fetching ──all bytes, length exact, whole-object CRC ok──▶ inMemory
//	                     │                                                         │
//	                     └──error (after resumes and CRC retries)──▶ failed        ├─queued──▶ writing ──record written──▶ cached
//	                                                                               │              │
//	                                                                               │◀──disk error──┘
//	                                                                               └─evicted (before a worker took it: a write skip), poisoned──▶ absent
//
// A chunk that reaches the disk is cached; it stays in memory, served from there, until memory
// is needed (or its generation is dropped), and is then served from the data file. A cached
// chunk whose bytes were checked against their record since they could have been read back
// from disk is verified; that lives in the LRU entry (entry.verified), not in the memChunk.
//
// What each state lets a reader do:
//
//	fetching   serve bytes that have arrived, unless the chunk is the whole object (then wait
//	           for the CRC check: nothing unverified is served)
//	inMemory   serve any byte from memory
//	writing    serve any byte from memory (the bytes are also on their way to the data file)
//	cached     serve any byte from memory while the chunk is there; once it is pushed out,
//	           from the data file (a span for splice, or a copy)
//	failed     return the fetch's error to the readers that waited; the next read refetches
type chunkState uint8

const (
	stAbsent chunkState = iota
	stFetching
	stInMemory
	stWriting
	stCached
	stFailed
)

var chunkStateNames = [...]string{"absent", "fetching", "in memory", "being written", "cached", "failed"}

func (s chunkState) String() string {
	if int(s) < len(chunkStateNames) {
		return chunkStateNames[s]
	}
	return fmt.Sprintf("chunkState(%d)", uint8(s))
}

// chunkMoves lists, for each state, the states a memChunk may move to.
var chunkMoves = map[chunkState][]chunkState{
	stAbsent:   {stFetching},
	stFetching: {stInMemory, stFailed, stAbsent /* cancelled: nobody waited */},
	stInMemory: {stWriting, stAbsent /* evicted from memory, or its generation failed its check */},
	stWriting:  {stCached, stInMemory /* the write failed (disk full): keep serving from memory */},
	stCached:   {},
	stFailed:   {},
}

// readable reports whether a reader may be served bytes of a chunk in state s that have
// arrived (whole says the chunk is the whole object, which must pass its CRC check first).
func (s chunkState) readable(whole bool) bool {
	switch s {
	case stFetching:
		return !whole
	case stInMemory, stWriting, stCached:
		return true
	}
	return false
}
