package fs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// tempDirName is the directory transfer puts the parts of composed uploads in (relative to a
// connection root). It is hidden from listings and lookups everywhere.
const tempDirName = vfs.TempDirName

// listPageSize is the page size of directory listings: GCS's maximum, so that a directory of
// 200,000 entries costs 200 requests.
const listPageSize = 1000

// dirEntry is one visible name of a directory listing.
type dirEntry struct {
	name string
	info objInfo
}

// hiddenName says why an object or prefix name is not shown, or "" when it is shown.
type hiddenName struct {
	name   string // the full object name or prefix
	reason string
}

// listDir lists the directory whose full object prefix is dirPrefix ("" for a bucket root,
// otherwise ending in "/") completely, following page tokens, and returns its visible entries
// sorted by name, plus what was hidden and why.
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
// subdirectory without one is known to have none (placeholderKnown).
func listDir(ctx context.Context, b store.Bucket, dirPrefix string) (entries []dirEntry, hidden []hiddenName, placeholder *store.Attrs, err error) {
	files := map[string]objInfo{}
	dirs := map[string]bool{}
	placeholders := map[string]store.Attrs{} // of subdirectories, by name
	token := ""
	for {
		page, err := b.List(ctx, store.ListOptions{Prefix: dirPrefix, Delimiter: "/", PageToken: token, PageSize: listPageSize, IncludeTrailingDelimiter: true})
		if err != nil {
			return nil, nil, nil, fmt.Errorf("list %q: %w", dirPrefix, err)
		}
		for _, a := range page.Objects {
			rel := strings.TrimPrefix(a.Name, dirPrefix)
			if rel == "" {
				p := a
				placeholder = &p
				continue
			}
			if sub, ok := strings.CutSuffix(rel, "/"); ok && sub != "" && !strings.Contains(sub, "/") {
				// The placeholder of the subdirectory sub; its common prefix is in the
				// listing too, and hidden names are reported there.
				if hideReason(sub) == "" {
					placeholders[sub] = a
					dirs[sub] = true
				}
				continue
			}
			if why := hideReason(rel); why != "" {
				hidden = append(hidden, hiddenName{a.Name, why})
				continue
			}
			files[rel] = infoFromAttrs(a)
		}
		for _, p := range page.Prefixes {
			rel := strings.TrimSuffix(strings.TrimPrefix(p, dirPrefix), "/")
			if why := hideReason(rel); why != "" {
				hidden = append(hidden, hiddenName{p, why})
				continue
			}
			dirs[rel] = true
		}
		if page.NextPageToken == "" || page.NextPageToken == token {
			break
		}
		token = page.NextPageToken
	}
	entries = make([]dirEntry, 0, len(files)+len(dirs))
	for name := range dirs {
		var info objInfo
		if a, ok := placeholders[name]; ok {
			info = dirInfo(&a)
		} else {
			info = dirInfo(nil)
		}
		entries = append(entries, dirEntry{name: name, info: info})
	}
	for name, info := range files {
		if dirs[name] {
			hidden = append(hidden, hiddenName{dirPrefix + name, "shadowed by the directory " + name + "/ (a directory wins over an object of the same name)"})
			continue
		}
		entries = append(entries, dirEntry{name: name, info: info})
	}
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
	return entries, hidden, placeholder, nil
}

// hideReason says why a name relative to its directory cannot be shown, or "" if it can.
func hideReason(rel string) string { return vfs.HideReason(rel) }

// findEntry returns the entry named name in a sorted listing.
func findEntry(entries []dirEntry, name string) (dirEntry, bool) {
	i, ok := slices.BinarySearchFunc(entries, name, func(e dirEntry, n string) int { return strings.Compare(e.name, n) })
	if !ok {
		return dirEntry{}, false
	}
	return entries[i], true
}

func findIndex(entries []dirEntry, name string) (int, bool) {
	return slices.BinarySearchFunc(entries, name, func(e dirEntry, n string) int { return strings.Compare(e.name, n) })
}

func sortEntries(entries []dirEntry) {
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.name, b.name) })
}
