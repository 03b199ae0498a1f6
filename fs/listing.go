package fs

import (
	"context"
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

// dirEntry is one visible name of a directory listing (vfs.Entry).
type dirEntry = vfs.Entry

// hiddenName says why an object or prefix name is not shown (vfs.Hidden).
type hiddenName = vfs.Hidden

// listDir lists the directory whose full object prefix is dirPrefix completely (vfs.ListDir:
// the directory wins over an object of the same name; hidden names are reported).
func listDir(ctx context.Context, b store.Bucket, dirPrefix string) ([]dirEntry, []hiddenName, *store.Attrs, error) {
	return vfs.ListDir(ctx, b, dirPrefix)
}

// hideReason says why a name relative to its directory cannot be shown, or "" if it can.
func hideReason(rel string) string { return vfs.HideReason(rel) }

// findEntry returns the entry named name in a sorted listing.
func findEntry(entries []dirEntry, name string) (dirEntry, bool) {
	i, ok := slices.BinarySearchFunc(entries, name, func(e dirEntry, n string) int { return strings.Compare(e.Name, n) })
	if !ok {
		return dirEntry{}, false
	}
	return entries[i], true
}

func findIndex(entries []dirEntry, name string) (int, bool) {
	return slices.BinarySearchFunc(entries, name, func(e dirEntry, n string) int { return strings.Compare(e.Name, n) })
}

func sortEntries(entries []dirEntry) {
	slices.SortFunc(entries, func(a, b dirEntry) int { return strings.Compare(a.Name, b.Name) })
}
