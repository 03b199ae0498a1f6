// Package fs is plxfs's filesystem: a go-fuse node tree that shows every mounted connection
// (a bucket plus an optional prefix) as one directory of the mountpoint, reads objects through
// the chunk cache (package cache) and writes files as uploads (package transfer). SEMANTICS.md
// at the repository root is the user-facing contract; this comment is the design.
//
// # Core
//
// What needs no kernel is moving to package vfs, the filesystem core (no go-fuse import,
// tested on store/memstore): the object side of namespace changes and lookups (vfs.Objects:
// create, delete, rename of files and directories, emptiness, metadata patches, the stat of
// one name), a directory's listing (vfs.ListDir), names (CheckNewName, CheckRename), the
// setattr policy (vfs.Attrs), what is known about a name (vfs.Info) and the lookup cache
// (vfs.MetaCache), the open handles and their modes (vfs.Opens), the staging file and its
// state (vfs.Stage), the drain (vfs.Gate) and the upload hand-off (vfs.Uploader). fs decodes
// each request, calls the core, keeps its nodes, the listing cache and its overlay of local
// changes in step, and maps errors (errno.go; the core's sentinels are rows of its table).
// The lookup order, the listing cache and a file's sync orchestration are still here.
//
// # Structure
//
// The tree has four node types, each embedding fusefs.Inode:
//
//   - rootNode: the mountpoint. Its children, one dirNode per connection, are created once
//     (persistent inodes); it refuses every change with EPERM (EROFS on a read-only mount).
//   - dirNode: a directory of a connection, path "" for the connection root. A directory is a
//     prefix "path/": it exists if any object starts with it (implicit directory) or if the
//     placeholder object "path/" exists (mkdir writes one).
//   - fileNode: a regular file, i.e. one object; or a file created through the mount that is not
//     uploaded yet.
//   - symlinkNode: an object whose metadata carries plxfs-symlink-target.
//
// Handles: dirHandle (an open directory: one listing, served to READDIR and READDIRPLUS) and
// fileHandle (an open file). Every node knows its connection and its path relative to the
// connection root; the object name is conn.prefix + path. Only connspec decides which object
// names are valid file names (hideReason).
//
// Inode numbers are stable: a hash of (connection, path, kind), so st_ino survives restarts.
// StableAttr.Gen moves on when a path is removed or renamed away (FS.incarnation), so that a
// new file at a reused path is a new inode even while the old one is still open.
//
// # Metadata and the kernel's caches
//
// One TTL (Options.TTL, --ttl, default 60 s) bounds every piece of reused metadata:
//
//   - the kernel's entry, attribute and negative-entry timeouts are the TTL;
//   - metaCache (vfs.MetaCache): positive and negative lookup results, bounded LRUs, expiring
//     after the TTL;
//   - a dirNode's cached listing (directories of at most maxCachedListing entries), reused by
//     opendir and by lookups for the TTL; changes made through the mount are applied over it
//     (dirNode.changes) rather than discarding it;
//   - a fileNode's info (size, generation, mtime) is refreshed by Getattr after the TTL.
//
// A lookup asks, in order: a child with local state (a file being written), an orphaned
// staging file, the stat cache, the parent's cached listing, and finally the bucket
// (statPath: a one-item listing of "path/" and a stat of "path", at once; a directory wins).
// After lookupListThreshold bucket lookups in one directory within a TTL, the next one lists the
// whole directory instead, so a reader opening a directory's files by name costs one paginated
// listing. READDIRPLUS is answered from the dirHandle's listing (FileLookuper), so `ls -l`
// costs the listing's pages and no request per entry: listings ask for the subdirectories'
// placeholder objects too (store.ListOptions.IncludeTrailingDelimiter), so a subdirectory's
// attributes come with its parent's listing, not from a stat of its placeholder. Extended attributes are disabled at
// mount (ENOSYS), so the kernel does not ask for them per entry either.
//
// # Reads
//
// Open pins the handle to the generation the node knows; reads go to cache.ReadAt with that
// generation, so bytes of two generations are never mixed within a handle. A generation that
// is gone (overwritten or deleted behind the mount) fails the read with ESTALE, forgets the
// node's info and invalidates the kernel's entry and attributes (asynchronously: a
// notification must not run inside an operation on the same inode), so the next open sees the
// new object. FOPEN_KEEP_CACHE is set while the generation is the one the kernel cached at the
// previous open. The mount raises the kernel readahead of its device to 4 MiB (sysfs, as root),
// since the kernel otherwise caps a FUSE mount's readahead at 128 KiB whatever max_readahead
// says; sequential reads then arrive as 1 MiB requests, several in flight.
//
// # Writes
//
// A file open for writing gets a staging file (staging, around the core's vfs.Stage): an
// unlinked temporary file under Options.StagingDir, so a crash leaves nothing behind and
// memory stays bounded. A new or truncated file starts empty; an existing object is copied in
// through the read cache on the first write (unchanged ranges come from the cache). Flush
// (every close) and Fsync upload the staged content (vfs.Uploader.Send, the core's hand-off)
// under a generation precondition (the generation the staging file replaces, 0 for a new
// file), on a context the caller's interrupts do not cancel. A new or truncated file written in order from offset 0 streams (stream.go, a
// transfer.PartWriter fed by every write): past the compose threshold its completed parts
// upload in the background while it is written (bounded by FS.partSlots), and sync only
// uploads the tail and composes, with the CRC32C of the whole content computed as it was
// written; any other write abandons the stream. A failed upload returns EIO (ESTALE for a failed precondition) and keeps the staged
// data dirty; a later flush retries. After a successful upload the node serves the new
// generation, handles opened earlier follow it (fileNode.successors), and the written bytes
// are stored in the cache (cache.Fill) so they are not fetched again. Release drops a clean
// staging file; a dirty one outlives its node (FS.staged, orphan) until a flush succeeds or
// SyncAll runs at unmount.
//
// # Namespace operations
//
// The object side of each lives in the core, package vfs (vfs.Objects, tested on an in-memory
// bucket without FUSE); fs keeps the nodes, the metadata cache and the listings in step with
// it. Each is one or a few conditional GCS calls: mkdir writes "dir/"; rmdir deletes it after a
// two-item listing proves the directory empty; unlink deletes the generation the mount knows;
// rename of a file is copy (with the target's generation, or "must not exist", as
// precondition) then delete of the source generation; rename of a directory copies then
// deletes every object below it and is not atomic. Symlinks are small objects whose content and
// metadata hold the target. Hard links are EPERM.
//
// # POSIX attributes
//
// Mode, owner and times live in each object's user metadata, in gsutil's keys (package
// posixmd); a directory's in its placeholder object (attr.go). chmod, chown and utimensat
// patch the metadata of the generation the node knows (or ride with a pending upload); every
// upload carries the file's attributes over to the new generation. A directory's mtime moves
// on each create, unlink and rename in it, and is stored at most once per TTL (dirNode.touched,
// flushed by SyncAll). FIFOs, sockets and devices are specialNodes: empty objects whose mode
// carries the type; the kernel serves their opens. Options.NoPOSIXMetadata turns all of this off
// but the modification time.
//
// # Errors
//
// toErrno (errno.go) is the only place an error becomes an errno; unknown errors are EIO.
// Every refusal plxfs makes is a sentinel of errno.go (errNotEmpty, errCrossConnection,
// errReadOnly...), mapped with its errno and log level in one table, errnoTable; no other file
// names an errno (TestNoInlineErrno). Every FUSE method that fails returns through FS.fail,
// which logs one line (op, connection, path, errno, cause) at the table's level (debug for
// refusals the caller can expect, warn for failures) and returns the errno. Below that
// boundary errors are wrapped with %w, not logged. Each FUSE method's doc comment states when
// the kernel calls it, what it must return, what plxfs does and which errnos it returns.
//
// # Lock order
//
// Acquire left before right, never the reverse:
//
//	fileNode.syncMu → vfs.Stage IO lock → fileNode.mu → FS.mu
//	fileNode.mu → transfer.PartWriter.mu, vfs.Opens.mu, vfs.Stage.mu (leaves)
//	FS.mu → vfs.Stage.mu (a leaf: package vfs's state locks are all leaves)
//	dirNode.mu, symlinkNode.mu → FS.mu
//
// A dirNode.mu is never held while another node's lock is taken. fileNode.syncMu (one upload
// of a file at a time) and the Stage IO lock (writers shared, upload/fill/truncate exclusive) are the
// only locks held across network I/O, and each concerns one file; at most one syncMu is held
// at a time. No node's mu is held while calling into go-fuse's tree (GetChild, Children,
// NewInode, Parent, Notify*), so go-fuse's inode locks are never taken inside ours, and the
// Notify calls run on their own goroutine (a notification about an inode must not be sent from
// inside an operation on it). metaCache and the golang-lru caches lock themselves
// and call nothing back.
//
// # Decisions
//
//   - A directory wins over an object of the same name: "a/" hides the object "a" (logged
//     once). GCS allows both; a file tree cannot show both.
//   - Object names that are not valid file names are hidden, never mapped elsewhere; so is
//     .plxfs-tmp, where transfer keeps upload parts.
//   - Objects stored with Content-Encoding gzip are served as their stored bytes (the sizes
//     then agree with what GCS reports); the store asks for them without decompression.
//   - A file's mtime is its last local change (kept in plxfs-mtime metadata), not the upload's
//     time, so stat tells the same before and after an upload.
//   - Sequential reads are answered by splicing from the cache's data file (cache.ReadSpan,
//     spanResult): no copy through plxfs's memory. A spliced reply must fit one pipe (1 MiB
//     unless fs.pipe-max-size is raised), so requests are capped at 1 MiB - 8 KiB.
//   - FUSE passthrough (Linux 6.9 or later, root, read-only mounts): an open of a wholly
//     cached object gets the cache's data file as its backing file, pinned until release, and
//     the kernel serves its reads without plxfs. The kernel admits no other mode beside a
//     passthrough open of an inode (a later page-cached or direct-I/O open fails with EIO) and
//     no passthrough beside page-cached opens; a writer's open could not be passthrough, so
//     read-write mounts do without. openPassthrough chooses passthrough only when every open
//     handle of the node is passthrough, and then every open joins them, on their generation
//     (the state machine is vfs.Opens: join, settle, flush, release; tested without FUSE).
//     A handle's release reaches plxfs after the close that caused it; an open waits up to
//     50 ms for the releases of handles already closed (flushed) before settling for the page
//     cache. TuneMount probes the kernel once; where it refuses, every read goes through plxfs.
package fs
