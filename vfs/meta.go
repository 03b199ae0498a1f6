package vfs

import (
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
)

// MetaCache remembers, for a bounded time (the TTL) and a bounded number of names, what a
// lookup found: a positive entry (the name's Info) or a negative one (nothing there). It is
// safe for concurrent use (the LRUs lock themselves); it holds no lock of its own.
//
// A zero or negative TTL disables it: every lookup asks the bucket.
type MetaCache struct {
	ttl time.Duration
	now func() time.Time
	pos *lru.Cache[string, metaEntry]
	neg *lru.Cache[string, time.Time] // value: expiry
}

type metaEntry struct {
	info    Info
	expires time.Time
}

// NewMetaCache returns a cache of at most posEntries positive and negEntries negative entries,
// each fresh for ttl by the clock now.
func NewMetaCache(ttl time.Duration, posEntries, negEntries int, now func() time.Time) *MetaCache {
	pos, err := lru.New[string, metaEntry](max(posEntries, 1))
	if err != nil {
		panic(err) // only for a size < 1, excluded above
	}
	neg, err := lru.New[string, time.Time](max(negEntries, 1))
	if err != nil {
		panic(err)
	}
	return &MetaCache{ttl: ttl, now: now, pos: pos, neg: neg}
}

// MetaKey names a path of a connection in the cache.
func MetaKey(connection, path string) string { return connection + "\x00" + path }

// Get returns (info, at, true, false) for a fresh positive entry, (_, at, false, true) for a
// fresh negative entry, and (_, _, false, false) when the cache knows nothing. at is when the
// entry was learnt.
func (m *MetaCache) Get(key string) (info Info, at time.Time, found, missing bool) {
	if m.ttl <= 0 {
		return Info{}, time.Time{}, false, false
	}
	now := m.now()
	if e, ok := m.pos.Get(key); ok && now.Before(e.expires) {
		return e.info, e.expires.Add(-m.ttl), true, false
	} // an expired positive entry stays (bounded by the LRU) for Last

	if exp, ok := m.neg.Get(key); ok {
		if now.Before(exp) {
			return Info{}, exp.Add(-m.ttl), false, true
		}
		m.neg.Remove(key)
	}
	return Info{}, time.Time{}, false, false
}

// Last returns the positive entry of key however old, and when it was learnt: what the mount
// last knew of a name, for when the backend does not answer its revalidation (see
// FS.servedStale). A negative entry, a Forget or an eviction leaves nothing.
func (m *MetaCache) Last(key string) (info Info, at time.Time, ok bool) {
	if m.ttl <= 0 {
		return Info{}, time.Time{}, false
	}
	e, ok := m.pos.Peek(key)
	if !ok {
		return Info{}, time.Time{}, false
	}
	return e.info, e.expires.Add(-m.ttl), true
}

// PutFound records that key exists with info.
func (m *MetaCache) PutFound(key string, info Info) { m.PutFoundAt(key, info, m.now()) }

// PutFoundAt records info at key as learnt at time at: when the request that returned it
// started. (Ordering what two requests said by when they started is what keeps a node from
// going back to an older generation: a request that started later cannot have seen less.)
func (m *MetaCache) PutFoundAt(key string, info Info, at time.Time) {
	if m.ttl <= 0 {
		return
	}
	m.neg.Remove(key)
	m.pos.Add(key, metaEntry{info: info, expires: at.Add(m.ttl)})
}

// PutMissing records that nothing exists at key.
func (m *MetaCache) PutMissing(key string) {
	if m.ttl <= 0 {
		return
	}
	m.pos.Remove(key)
	m.neg.Add(key, m.now().Add(m.ttl))
}

// Forget drops whatever the cache knows about key.
func (m *MetaCache) Forget(key string) {
	m.pos.Remove(key)
	m.neg.Remove(key)
}

// ForgetTree drops key and every key below it (key + "/..."), after a directory rename or
// removal. It walks the whole cache, which is bounded; directory renames are rare.
func (m *MetaCache) ForgetTree(key string) {
	m.Forget(key)
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
