package vfs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plxfs/plxfs/store"
)

// Entry is one visible name of a directory listing.
type Entry struct {
	Name string
	Info Info
}

// Hidden says why an object or prefix name is not shown.
type Hidden struct {
	Name   string // the full object name or prefix
	Reason string
}

// ListDir lists the directory whose full object prefix is dirPrefix ("" for a bucket root,
// otherwise ending in "/") completely, following page tokens, and returns its visible entries
// sorted by name, plus what was hidden and why, and the directory's own placeholder (nil when
// it has none).
//
// The rules (SEMANTICS.md "Connections and paths"):
//   - a common prefix "p/x/" is a directory x; an object "p/x" is a file (or symlink) x;
//   - when both exist, the directory wins and the object is hidden;
//   - the placeholder object "p/" of the directory itself is not an entry;
//   - names that fail connspec.SegmentOK (empty, ".", "..", NUL, over 255 bytes) are hidden,
//     as is the reserved temporary directory .plxfs-tmp.
//
// The listing asks for the subdirectories' placeholder objects "p/x/" too
// (IncludeTrailingDelimiter): they are never entries of their own (each is the directory x),
// but their attributes become x's, so that `ls -l` needs no request per subdirectory. A
// subdirectory without one is known to have none (PlaceholderKnown).
func ListDir(ctx context.Context, b store.Bucket, dirPrefix string) (entries []Entry, hidden []Hidden, placeholder *store.Attrs, err error) {
	l := listing{prefix: dirPrefix, files: map[string]Info{}, dirs: map[string]bool{}, placeholders: map[string]store.Attrs{}}
	token := ""
	for {
		page, err := b.List(ctx, store.ListOptions{Prefix: dirPrefix, Delimiter: "/", PageToken: token, PageSize: listPageSize, IncludeTrailingDelimiter: true})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("list %q: %w", dirPrefix, err)
		}
		l.add(page)
		if page.NextPageToken == "" || page.NextPageToken == token {
			break
		}
		token = page.NextPageToken
	}
	entries = l.entries()
	return entries, l.hidden, l.placeholder, nil
}

// listing gathers the pages of one directory listing.
type listing struct {
	prefix       string
	files        map[string]Info
	dirs         map[string]bool
	placeholders map[string]store.Attrs // of subdirectories, by name
	placeholder  *store.Attrs           // the directory's own
	hidden       []Hidden
}

// add takes in one page.
func (l *listing) add(page store.Page) {
	for _, a := range page.Objects {
		rel := strings.TrimPrefix(a.Name, l.prefix)
		if rel == "" {
			p := a
			l.placeholder = &p
			continue
		}
		if sub, ok := strings.CutSuffix(rel, "/"); ok && sub != "" && !strings.Contains(sub, "/") {
			// The placeholder of the subdirectory sub; its common prefix is in the
			// listing too, and hidden names are reported there.
			if HideReason(sub) == "" {
				l.placeholders[sub] = a
				l.dirs[sub] = true
			}
			continue
		}
		if why := HideReason(rel); why != "" {
			l.hidden = append(l.hidden, Hidden{a.Name, why})
			continue
		}
		l.files[rel] = InfoFromAttrs(a)
	}
	for _, p := range page.Prefixes {
		rel := strings.TrimSuffix(strings.TrimPrefix(p, l.prefix), "/")
		if why := HideReason(rel); why != "" {
			l.hidden = append(l.hidden, Hidden{p, why})
			continue
		}
		l.dirs[rel] = true
	}
}

// entries are the visible entries, sorted by name: a directory wins over an object of the
// same name (the object is reported hidden).
func (l *listing) entries() []Entry {
	entries := make([]Entry, 0, len(l.files)+len(l.dirs))
	for name := range l.dirs {
		var info Info
		if a, ok := l.placeholders[name]; ok {
			info = DirInfo(&a)
		} else {
			info = DirInfo(nil)
		}
		entries = append(entries, Entry{Name: name, Info: info})
	}
	for name, info := range l.files {
		if l.dirs[name] {
			l.hidden = append(l.hidden, Hidden{l.prefix + name, "shadowed by the directory " + name + "/ (a directory wins over an object of the same name)"})
			continue
		}
		entries = append(entries, Entry{Name: name, Info: info})
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries
}
