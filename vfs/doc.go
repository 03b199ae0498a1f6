// Package vfs is plxfs's filesystem core: every connection's namespace, files and
// directories with a plain Go API and no go-fuse import, so that it can be tested on an
// in-memory bucket (store/memstore) in milliseconds. Package fs is the FUSE adapter around it:
// it decodes a request, calls the core, and maps the error to an errno (fs/errno.go holds the
// one table; the core's sentinels, Errors, are rows of it). SEMANTICS.md at the repository
// root is the user-facing contract; this comment is the design.
//
// # Structure
//
// FS is one mount: its connections (Conn: a bucket and a prefix), the lookup cache, the drain
// gate and the uploads' transfer slots. Each Conn keeps a registry of the nodes the kernel
// knows, by path: File (a regular file), Dir (a directory: the connection root "" or a prefix
// "path/") and Leaf (a symlink or special file), one per path. A registered node is the one a
// lookup of its path finds (a lookup that finds another kind there replaces it); the adapter's
// kernel nodes hold them and tell the core when the kernel forgets
// one (Forget). Renames move registered paths (a directory's with everything below it), so
// open files follow their objects. Below the registry:
//
//   - Objects: the object side of namespace changes and lookups, each one or a few
//     conditional GCS calls: create a small object that must not exist, delete the generation
//     the mount knows (ErrStale when it was replaced behind the mount), prove a directory
//     empty, move a file (copy with a precondition, then delete the source generation), move
//     a directory tree (not atomic), Stat (a directory wins over an object of the same name).
//   - ListDir: one directory's listing, all pages, with the rules of what is shown (invalid
//     and reserved names are hidden, and reported once).
//   - Opens: the open handles of one file and the mode they read in (page-cached or
//     passthrough), with its transitions (open, join, settle, flush, release); waits are
//     channels, never polling.
//   - Stage: the staging file of a file being written and its state (filled, dirty, size, the
//     generation its upload replaces, times, version), changed by transitions and read as one
//     snapshot.
//   - Successors: "a generation was replaced" bookkeeping of one file, so that handles pinned
//     to a generation this mount replaced (by an upload or a rename) follow it.
//   - Uploader: the upload hand-off: the stream a new file written in order feeds (a
//     transfer.PartWriter), and Send, which commits it or uploads the whole content, under the
//     generation precondition of the content it replaces.
//   - Gate (read-only, draining after SIGTERM), Attrs (POSIX attributes in metadata), Info
//     (what is known about a name), MetaCache (the lookup cache), names (CheckNewName,
//     HideReason, CheckRename; connspec decides what is a valid name).
//
// # Metadata
//
// One TTL (Config.TTL) bounds every piece of reused metadata: MetaCache's positive and
// negative entries, a Dir's cached listing (directories of at most maxCachedListing entries;
// changes made through the mount are applied over it rather than discarding it), a File's
// info (refreshed by Attr after the TTL). Dir.Lookup asks, in order: a file with local state
// (being written, or an orphan), the lookup cache, the cached listing, and finally the bucket
// (Objects.Stat); after LookupListThreshold bucket lookups in one directory within a TTL, the
// next one lists the whole directory instead. Listings bring subdirectories' placeholder
// objects along (their attributes), so `ls -l` costs the listing's pages only.
//
// # Reads
//
// File.Open pins the handle to the generation the file knows; reads go to cache.ReadAt (or
// ReadSpan, for a zero-copy reply) with that generation, so bytes of two generations are never
// mixed within a handle. A generation that is gone fails the read with ErrStale and makes the
// file forget it, so the next open sees the new object. With passthrough (read-only mounts)
// an open of a wholly cached object gets the cache's pinned data file (OpenFile.Whole) and
// the kernel reads it itself; Opens admits passthrough only when every open handle of the file
// is passthrough, and then every open joins them, on their generation. An open waits up to
// releaseWait for the releases of handles already closed before it settles for the page cache.
//
// # Writes
//
// A file open for writing gets a staging file (Stage): an unlinked temporary file under
// Config.StagingDir, so a crash leaves nothing behind and memory stays bounded. A new or
// truncated file starts empty; an existing object is copied in through the read cache on the
// first write. Every close (OpenFile.Flush) and fsync uploads the staged content (File.Sync)
// under a generation precondition (the generation the staging file replaces, 0 for a new
// file), on a context the caller's interrupts do not cancel. A new or truncated file written in
// order from offset 0 streams: past the compose threshold its completed parts upload while it
// is written, and Sync only uploads the tail and composes. A failed upload returns its error
// (ESTALE for a failed precondition) and keeps the staged data dirty; a later Sync retries.
// After an upload the file serves the new generation, handles opened earlier follow it, and
// the written bytes are stored in the cache (cache.Fill). The last writer's release drops a
// clean staging file; a dirty one whose file the kernel forgets stays registered (an orphan)
// until a lookup adopts it or SyncAll uploads it at unmount.
//
// # Namespace operations
//
// Dir.Create, Mknod, Mkdir, Symlink, Unlink, Rmdir and Rename (namespace.go) check the name
// and the gate, call Objects, then keep the registry, the lookup cache and the parent's
// listing in step. A directory's mtime moves on with each create, unlink and rename in it, and
// is stored in its placeholder at most once per TTL (Dir.touched; SyncAll stores the rest).
// Mode, owner and times live in each object's user metadata, in gsutil's keys (package
// posixmd); chmod, chown and utimensat patch the metadata of the generation the mount knows,
// or ride with a pending upload.
//
// # Errors
//
// The core returns store's errors (ErrNotExist, ErrPrecondition, ErrPermission) and its own
// sentinels (Errors), wrapped with %w; it logs only what no caller hears of (a cache fill or a
// directory's times that failed, an orphan kept), and makes no errno.
//
// # Lock order
//
// See FS: File.syncMu → Stage IO lock → File.mu → Conn.mu, FS.mu; File.mu → Opens.mu,
// Stage.mu, transfer.PartWriter.mu; Dir.mu, Leaf.mu → Conn.mu, FS.mu. Conn.mu, FS.mu and the
// state locks of Opens and Stage are leaves: held while calling nothing.
package vfs
