package vfs

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
)

// maxCachedListing bounds the size of a listing a directory keeps for the TTL. A bigger
// directory is listed again on every opendir (its entries still land in the lookup cache), so
// memory stays bounded however big the directories are.
const maxCachedListing = 50_000

// LookupListThreshold is how many lookups of one directory may go to the bucket within a TTL
// before the next one lists the whole directory instead: a reader that opens a directory's
// files by name (without readdir) then costs one paginated listing, not two requests per file.
const LookupListThreshold = 4

// ErrHiddenName: a lookup of a name no object can have (hidden names).
var ErrHiddenName = errors.New("no object can have this name (plxfs hides such names)")

// Dir is a directory of a connection: the connection root (path "") or a prefix "path/". It
// exists if any object starts with the prefix (an implicit directory) or if its placeholder
// object "path/" exists (mkdir writes one). It keeps its attributes (from the placeholder),
// its times as this mount changes them, and its cached listing with this mount's changes
// applied over it.
type Dir struct {
	fs *FS
	c  *Conn

	// mu guards the fields below.
	mu     sync.Mutex
	path   string
	info   Info      // what the placeholder says (mode, owner, times), and this mount's changes
	infoAt time.Time // when info was learnt from the bucket; zero: not yet (see ensureInfo)
	// timesPending: an entry changed and the new mtime is not stored yet; timesStoring: a
	// store of it is under way; timesStored: when the times were last stored (see touched).
	timesPending bool
	timesStoring bool
	timesStored  time.Time
	listing      []Entry // cached listing (sorted), nil when none
	listedAt     time.Time
	// changes are what this mount changed in the directory since the cached listing was
	// made (nil: removed); they override the listing, so a change does not cost a relisting.
	changes map[string]*Info
	listGen uint64 // bumped by every change made through the mount; a listing started before is not kept
	// misses counts lookups sent to the bucket since missesSince (within one TTL); past
	// LookupListThreshold the directory is listed instead (see Lookup).
	misses      int
	missesSince time.Time
	bigListedAt time.Time // last listing too big to keep: no listing-for-lookups until the TTL passes
	// keptLinks is the link count the directory had when it lost its listing to a rename
	// (known as of keptLinksAt; 0: none); any change in it makes it unknown (see nlink.go).
	keptLinks   uint32
	keptLinksAt time.Time

	lists singleflight.Group // one listing of this directory at a time
}

// Dir returns the registered directory at path p, or registers a new one; known: info comes
// from the placeholder (learnt at time at), not from a bare common prefix.
func (c *Conn) Dir(p string, info Info, at time.Time, known bool) *Dir {
	c.mu.Lock()
	d, found := c.nodes[p].(*Dir)
	if !found {
		d = &Dir{fs: c.fs, c: c, path: p, info: info}
		if known {
			d.infoAt = at // no stat of the placeholder (ensureInfo) before the TTL passes
		}
		c.nodes[p] = d
	}
	c.mu.Unlock()
	if found && known {
		d.applyInfo(info, at)
	}
	return d
}

// Forget is the kernel forgetting the directory's node: it is unregistered.
func (d *Dir) Forget() { d.c.unregister(d.Path(), d) }

// Path is the directory's path in its connection ("" for the root).
func (d *Dir) Path() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.path
}

// Conn is the directory's connection.
func (d *Dir) Conn() *Conn { return d.c }

// Attr is the directory's info, fetched from its placeholder when not known within the TTL.
func (d *Dir) Attr(ctx context.Context) Info {
	d.ensureInfo(ctx)
	d.mu.Lock()
	defer d.mu.Unlock()
	info := d.info
	info.Kind = KindDir
	info.Links = d.linksLocked()
	return info
}

// Lookup returns what is at name in the directory and when that was learnt, or an error
// wrapping store.ErrNotExist (with the time the absence was learnt); ErrNameTooLong for a
// name over 255 bytes, ErrHiddenName for one no object can have. It asks, in order: a
// file with local state (being written, or an orphan), the lookup cache, the cached listing,
// and finally the bucket (Objects.Stat; after LookupListThreshold of those within a TTL, a
// listing of the whole directory instead). When the bucket does not answer (a stall, an
// outage), what the connection last knew of the name is returned, as it was learnt (see
// stale.go); the error only when it knows nothing.
func (d *Dir) Lookup(ctx context.Context, name string) (Info, time.Time, error) {
	if len(name) > MaxNameLen {
		return Info{}, time.Time{}, ErrNameTooLong // as a local disk answers, for every call that looks it up
	}
	if HideReason(name) != "" || connspec.ObjectNameOK(name) != nil {
		return Info{}, time.Time{}, ErrHiddenName
	}
	p := ChildPath(d.Path(), name)
	info, at, err := d.lookup(ctx, name, p)
	if noAnswer(ctx, err) {
		if known, knownAt, ok := d.c.lastKnown(p); ok {
			d.fs.servedStale(d.c, p, knownAt, err)
			return known, knownAt, nil
		}
	}
	return info, at, err
}

// lookup is Lookup of a valid name at path p, without the stale fallback.
func (d *Dir) lookup(ctx context.Context, name, p string) (Info, time.Time, error) {
	now := d.fs.Now()
	d.c.mu.Lock()
	f, _ := d.c.nodes[p].(*File)
	d.c.mu.Unlock()
	if f != nil {
		if info, ok := f.Local(); ok {
			return info, now, nil
		}
	}
	key := MetaKey(d.c.Name, p)
	if info, at, found, missing := d.fs.meta.Get(key); found {
		return info, at, nil
	} else if missing {
		return Info{}, at, store.ErrNotExist
	}
	if info, at, ok, err := d.fromListing(name); ok {
		return info, at, err
	}
	if d.listInstead(now) {
		entries, at, err := d.List(ctx)
		if err == nil {
			if e, ok := FindEntry(entries, name); ok {
				return e.Info, at, nil
			}
			d.fs.meta.PutMissing(key)
			return Info{}, at, store.ErrNotExist
		}
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			// The backend did not answer in time (hedged, then given up): a stat would only
			// wait as long again. Other listing errors fall back to the stat.
			return Info{}, time.Time{}, err
		}
	}
	info, err := d.c.objs.Stat(ctx, p)
	if errors.Is(err, store.ErrNotExist) {
		d.fs.meta.PutMissing(key)
		return Info{}, now, err
	}
	if err != nil {
		return Info{}, time.Time{}, err
	}
	d.fs.meta.PutFoundAt(key, info, now)
	return info, now, nil
}

// fromListing answers a lookup from the cached listing while it is fresh (ok).
func (d *Dir) fromListing(name string) (info Info, at time.Time, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listing == nil || !d.fs.Fresh(d.listedAt) {
		return Info{}, time.Time{}, false, nil
	}
	changed, found := d.changes[name]
	if !found {
		var e Entry
		if e, found = FindEntry(d.listing, name); found {
			changed = &e.Info
		}
	}
	if !found || changed == nil {
		return Info{}, d.listedAt, true, store.ErrNotExist
	}
	return *changed, d.listedAt, true, nil
}

// listInstead counts a lookup sent to the bucket and reports whether it should list the
// directory instead.
func (d *Dir) listInstead(now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.fs.Fresh(d.missesSince) {
		d.misses, d.missesSince = 0, now
	}
	d.misses++
	return d.misses > LookupListThreshold && d.fs.cfg.TTL > 0 && !d.fs.Fresh(d.bigListedAt)
}

// List returns the directory's entries, sorted, and when they were listed: the cached listing
// while it is fresh, otherwise a new complete listing from the bucket, merged with the files
// that exist only locally so far. Concurrent callers share one listing, which one caller's
// interrupt does not cancel.
func (d *Dir) List(ctx context.Context) ([]Entry, time.Time, error) {
	d.mu.Lock()
	if d.listing != nil && d.fs.Fresh(d.listedAt) {
		l, at := d.mergedLocked(), d.listedAt
		d.mu.Unlock()
		return l, at, nil
	}
	d.mu.Unlock()
	ch := d.lists.DoChan("list", func() (any, error) {
		return d.listNow(context.WithoutCancel(ctx))
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, time.Time{}, r.Err
		}
		l := r.Val.(listed)
		return l.entries, l.at, nil
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
}

// listed is a listing and the time it started.
type listed struct {
	entries []Entry
	at      time.Time
}

// listNow lists the directory from the bucket.
func (d *Dir) listNow(ctx context.Context) (listed, error) {
	d.mu.Lock()
	path, gen := d.path, d.listGen
	d.mu.Unlock()

	start := d.fs.Now()
	prefix := d.c.objs.DirPrefix(path)
	entries, hidden, placeholder, err := ListDir(ctx, d.c.bucket, prefix)
	if err != nil {
		return listed{}, err
	}
	d.fs.logHidden(d.c, hidden)
	entries = d.mergeLocal(path, entries)
	cacheable := len(entries) <= maxCachedListing
	if !cacheable {
		for _, e := range entries {
			d.fs.meta.PutFoundAt(MetaKey(d.c.Name, ChildPath(path, e.Name)), e.Info, start)
		}
	}
	if prefix != "" { // the root of a whole bucket has no placeholder to read
		d.applyInfo(DirInfo(placeholder), start) // nil: a complete listing would have returned it
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cacheable && d.listGen == gen {
		d.listing, d.listedAt, d.changes = entries, start, nil
	}
	if !cacheable {
		d.bigListedAt = start
	}
	return listed{entries, start}, nil
}

// mergeLocal adds the files created through the mount that are not uploaded yet, and updates
// the entries of files with staged changes, so that ls shows what this mount's writers see.
func (d *Dir) mergeLocal(path string, entries []Entry) []Entry {
	var extra []Entry
	for _, f := range d.c.stagedUnder(path) {
		info, ok := f.Local()
		p := f.Path()
		if !ok || p == path || parentOf(p) != path {
			continue
		}
		name := baseOf(p)
		if i, found := findIndex(entries, name); found {
			if entries[i].Info.Kind == KindFile {
				entries[i].Info = info
			}
			continue
		}
		extra = append(extra, Entry{Name: name, Info: info})
	}
	if len(extra) == 0 {
		return entries
	}
	entries = append(entries, extra...)
	sortEntries(entries)
	return entries
}

// noteListing records a change made through the mount to the entry name (info nil: removed).
// A cached listing stays valid with the change applied over it; a listing in flight when the
// change happens is not kept (it may or may not include the change).
func (d *Dir) noteListing(name string, info *Info) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.listGen++
	if d.listing == nil {
		d.keptLinks = 0
		return
	}
	if d.changes == nil {
		d.changes = map[string]*Info{}
	}
	if info != nil {
		c := *info
		info = &c
	}
	d.changes[name] = info
}

// noteChange records a new, changed or removed entry (noteListing) and moves the
// directory's times on (touched).
func (d *Dir) noteChange(name string, info *Info) {
	d.noteListing(name, info)
	d.touched()
}

// mergedLocked is the cached listing with the changes applied, sorted.
func (d *Dir) mergedLocked() []Entry {
	if len(d.changes) == 0 {
		return d.listing
	}
	out := make([]Entry, 0, len(d.listing)+len(d.changes))
	for _, e := range d.listing {
		if _, changed := d.changes[e.Name]; !changed {
			out = append(out, e)
		}
	}
	for name, info := range d.changes {
		if info != nil {
			out = append(out, Entry{Name: name, Info: *info})
		}
	}
	sortEntries(out)
	return out
}

// moved gives the directory its new path after a rename; its listing is dropped.
func (d *Dir) moved(p string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.path = p
	d.keepLinksLocked()
	d.listing = nil
	d.listGen++
}

// findEntry returns the entry named name in a sorted listing.
func FindEntry(entries []Entry, name string) (Entry, bool) {
	i, ok := findIndex(entries, name)
	if !ok {
		return Entry{}, false
	}
	return entries[i], true
}

func findIndex(entries []Entry, name string) (int, bool) {
	return slices.BinarySearchFunc(entries, name, func(e Entry, n string) int { return strings.Compare(e.Name, n) })
}

func sortEntries(entries []Entry) {
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
}
