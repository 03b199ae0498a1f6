package fs

import (
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// Metadata keys plxfs writes into objects' user metadata.
const (
	// mdMtime holds a file's modification time (RFC 3339, nanoseconds). With POSIX metadata
	// on, it is written beside Google's goog-reserved-file-mtime (whole seconds) for the
	// nanoseconds; package posixmd reads and writes both, and rclone's "mtime".
	mdMtime = posixmd.PlxfsMtimeKey
	// mdSymlink marks an object as a symbolic link; its value is the link target (the object's
	// content holds the target too, for other tools).
	mdSymlink = vfs.SymlinkKey
)

// objInfo is what the filesystem knows about one name in a connection (vfs.Info).
type objInfo = vfs.Info

// infoFromAttrs converts an object's attributes (vfs.InfoFromAttrs).
func infoFromAttrs(a store.Attrs) objInfo { return vfs.InfoFromAttrs(a) }

// dirInfo is what a directory's placeholder object says about it (vfs.DirInfo); nil: the
// directory has no placeholder.
func dirInfo(placeholder *store.Attrs) objInfo { return vfs.DirInfo(placeholder) }

// metaCache remembers, for a bounded time (the TTL) and a bounded number of names, what a
// lookup found: a positive entry (the name's objInfo) or a negative one (nothing there). It is
// safe for concurrent use (the LRUs lock themselves); it holds no lock of its own.
//
// A zero or negative TTL disables it: every lookup asks the bucket.
type metaCache struct {
	ttl time.Duration
	now func() time.Time
	pos *lru.Cache[string, metaEntry]
	neg *lru.Cache[string, time.Time] // value: expiry
}

type metaEntry struct {
	info    objInfo
	expires time.Time
}

func newMetaCache(ttl time.Duration, posEntries, negEntries int, now func() time.Time) *metaCache {
	pos, err := lru.New[string, metaEntry](max(posEntries, 1))
	if err != nil {
		panic(err) // only for a size < 1, excluded above
	}
	neg, err := lru.New[string, time.Time](max(negEntries, 1))
	if err != nil {
		panic(err)
	}
	return &metaCache{ttl: ttl, now: now, pos: pos, neg: neg}
}

// metaKey names a path of a connection in the cache.
func metaKey(connection, path string) string { return connection + "\x00" + path }

// get returns (info, at, true, false) for a fresh positive entry, (_, at, false, true) for a
// fresh negative entry, and (_, _, false, false) when the cache knows nothing. at is when the
// entry was learnt.
func (m *metaCache) get(key string) (info objInfo, at time.Time, found, missing bool) {
	if m.ttl <= 0 {
		return objInfo{}, time.Time{}, false, false
	}
	now := m.now()
	if e, ok := m.pos.Get(key); ok {
		if now.Before(e.expires) {
			return e.info, e.expires.Add(-m.ttl), true, false
		}
		m.pos.Remove(key)
	}
	if exp, ok := m.neg.Get(key); ok {
		if now.Before(exp) {
			return objInfo{}, exp.Add(-m.ttl), false, true
		}
		m.neg.Remove(key)
	}
	return objInfo{}, time.Time{}, false, false
}

// putFound records that key exists with info.
func (m *metaCache) putFound(key string, info objInfo) { m.putFoundAt(key, info, m.now()) }

// putFoundAt records info at key as learnt at time at: when the request that returned it
// started. (Ordering what two requests said by when they started is what keeps a node from
// going back to an older generation: a request that started later cannot have seen less.)
func (m *metaCache) putFoundAt(key string, info objInfo, at time.Time) {
	if m.ttl <= 0 {
		return
	}
	m.neg.Remove(key)
	m.pos.Add(key, metaEntry{info: info, expires: at.Add(m.ttl)})
}

// putMissing records that nothing exists at key.
func (m *metaCache) putMissing(key string) {
	if m.ttl <= 0 {
		return
	}
	m.pos.Remove(key)
	m.neg.Add(key, m.now().Add(m.ttl))
}

// forget drops whatever the cache knows about key.
func (m *metaCache) forget(key string) {
	m.pos.Remove(key)
	m.neg.Remove(key)
}

// forgetTree drops key and every key below it (key + "/..."), after a directory rename or
// removal. It walks the whole cache, which is bounded; directory renames are rare.
func (m *metaCache) forgetTree(key string) {
	m.forget(key)
	below := key + "/"
	if strings.HasSuffix(key, "\x00") { // a connection root: everything of the connection
		below = key
	}
	for _, k := range m.pos.Keys() {
		if strings.HasPrefix(k, below) {
			m.pos.Remove(k)
		}
	}
	for _, k := range m.neg.Keys() {
		if strings.HasPrefix(k, below) {
			m.neg.Remove(k)
		}
	}
}
