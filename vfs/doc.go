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
//     generation), move a directory tree (not atomic), and Stat, the lookup of one name in
//     the bucket (a directory wins over an object of the same name).
//   - Successors: the "a generation was replaced" bookkeeping of one file, so that handles
//     pinned to a generation this mount replaced (by an upload or a rename) follow it.
//   - Opens: the open handles of one file and the mode they read in (page-cached or
//     passthrough), with its transitions (open, join, flush, release) and the waits for
//     releases as conditions on a channel, never polling.
//   - Stage: the staging file of a file being written and its state (filled, dirty, size,
//     the generation its upload replaces, times, version), changed by transitions (Created,
//     Wrote, Filled, Truncated, Uploaded, Rebase, Clean) and read as one snapshot (State).
//   - Gate: whether the mount takes new changes (read-only, draining after SIGTERM).
//   - Uploader: the upload hand-off of a connection's staged files: the stream a new file
//     written in order feeds, and Send, which commits it or uploads the whole content, under
//     the generation precondition of the content it replaces.
//   - Attributes (setattr): AttrChange, what chmod, chown and utimensat ask; Attrs, the mount's
//     policy for POSIX attributes in metadata (Apply, Patch, Metadata); Objects.Patch, the
//     metadata patch of the generation the mount knows.
//   - Info, what is known about a name (InfoFromAttrs, DirInfo), and MetaCache, the lookup
//     cache: positive and negative entries, bounded, expiring after the TTL.
//   - ListDir: one directory's listing, all pages, with the rules of what is shown (a
//     directory wins over an object of the same name; invalid and reserved names are hidden,
//     and reported).
//   - Names: Kind, CheckNewName (which names a new entry may have; connspec decides what is
//     a valid name), HideReason, and CheckRename, rename(2)'s decision before anything moves.
//
// # Errors
//
// The core returns store's errors (ErrNotExist, ErrPrecondition, ErrPermission) and the
// sentinels of errors.go, wrapped with %w; it logs nothing and makes no errno.
//
// # Lock order
//
// Every state lock of the core (Opens.mu, Stage.mu) is a leaf: it is never held while calling
// out (to the bucket, to a caller's function, or to another lock), so a caller may hold its
// own locks while calling those methods; none of them blocks. The exception is a Stage's IO
// lock (LockIO, RLockIO), held across the staging file's I/O and the upload: it is taken before
// the caller's own lock. Waits (Step.Wait, Settle's retry) are channels the caller selects on
// with none of its locks held. fs/doc.go gives the whole order:
//
//	fileNode.syncMu → Stage IO lock → fileNode.mu → FS.mu
//	fileNode.mu, FS.mu → Opens.mu, Stage.mu (leaves)
package vfs
