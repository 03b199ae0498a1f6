// Package vfs is plxfs's filesystem core: the parts of the filesystem that need no kernel,
// with a plain Go API and no go-fuse import, so that they can be tested on an in-memory bucket
// (store/memstore) in milliseconds. Package fs is the FUSE adapter around it: it decodes a
// request, calls the core, and maps the error to an errno (fs/errno.go holds the one table;
// the core's sentinels are rows of it).
//
// What lives here so far:
//
//   - Objects: the namespace of one connection (a bucket and a prefix) as object operations,
//     each one or a few conditional GCS calls: create a small object that must not exist,
//     delete the generation the mount knows (ErrStale when it was replaced behind the mount),
//     prove a directory empty, move a file (copy with a precondition, then delete the source
//     generation) and move a directory tree (not atomic).
//   - Successors: the "a generation was replaced" bookkeeping of one file, so that handles
//     pinned to a generation this mount replaced (by an upload or a rename) follow it.
//   - Opens: the open handles of one file and the mode they read in (page-cached or
//     passthrough), with its transitions (open, join, flush, release) and the waits for
//     releases as conditions on a channel, never polling.
//
// # Errors
//
// The core returns store's errors (ErrNotExist, ErrPrecondition, ErrPermission) and the
// sentinels of errors.go, wrapped with %w; it logs nothing and makes no errno.
//
// # Lock order
//
// Every lock of the core is a leaf: it is never held while calling out (to the bucket, to a
// caller's function, or to another lock), so a caller may hold its own locks while calling the
// core's non-blocking methods. The one blocking method, Opens.Wait, must be called with none
// of the caller's locks held. fs/doc.go gives the whole order: fileNode.mu → Opens.mu.
package vfs
