// Package fs is plxfs's FUSE adapter: a go-fuse node tree that shows every mounted connection
// (a bucket plus an optional prefix) as one directory of the mountpoint. The filesystem itself
// (namespace, files and their states, listings, uploads, the drain) is the core's, package
// vfs, which has no go-fuse import and is tested without a kernel; each FUSE method here
// decodes the request, calls the core, and maps the error to an errno. SEMANTICS.md at the
// repository root is the user-facing contract; vfs/doc.go is the filesystem's design, this
// comment the kernel's side of it.
//
// # Structure
//
// Each node type embeds fusefs.Inode and holds the core's node of the same path:
//
//   - rootNode: the mountpoint. Its children, one dirNode per connection (the connection's
//     root vfs.Dir), are created once (persistent inodes); it refuses every change with EPERM
//     (EROFS on a read-only mount).
//   - dirNode (vfs.Dir): a directory of a connection.
//   - fileNode (vfs.File): a regular file.
//   - leafNode (vfs.Leaf): a symlink or a special file (FIFO, socket, device node; the
//     kernel serves its opens).
//
// Handles: dirHandle (an open directory: one listing, served to READDIR and READDIRPLUS) and
// fileHandle (an open file, vfs.OpenFile; passthroughHandle when the kernel reads it itself).
// A lookup's answer becomes a node through the core (vfs.Dir.Child returns the registered
// node of the path, or a new one); the kernel's node is reused when it holds that same core
// node. OnForget tells the core when the kernel forgets a node.
//
// Inode numbers are stable: a hash of (connection, path, kind), so st_ino survives restarts.
// StableAttr.Gen is the path's incarnation (vfs.Conn.Incarnation), which moves on when a path
// is removed or renamed away, so that a new file at a reused path is a new inode even while the
// old one is still open.
//
// # The kernel's caches
//
// The kernel's entry, attribute and negative-entry timeouts are what is left of the TTL
// (Options.TTL, --ttl, default 60 s) since the answer was learnt (setTimeouts), so reused
// metadata is never older than one TTL anywhere. READDIRPLUS is answered from the dirHandle's
// listing (FileLookuper), so `ls -l` costs no request per entry. Extended attributes are
// disabled at mount (ENOSYS), so the kernel does not ask for them per entry either.
// FOPEN_KEEP_CACHE is set while the generation is the one the kernel cached at the previous
// open. A read that finds its generation gone invalidates the kernel's entry and pages
// (notifyStale; asynchronously: a notification must not run inside an operation on the same
// inode).
//
// # Reads
//
// The mount raises the kernel readahead of its device to 4 MiB (sysfs, as root), since the
// kernel otherwise caps a FUSE mount's readahead at 128 KiB whatever max_readahead says;
// sequential reads then arrive as 1 MiB requests, several in flight. They are answered by
// splicing from the cache's data file (cache.ReadSpan, spanResult) or written from chunk
// memory (memResult): no copy through plxfs's memory. A spliced reply must fit one pipe (1 MiB
// unless fs.pipe-max-size is raised), so requests are capped at 1 MiB - 8 KiB.
//
// FUSE passthrough (Linux 6.9 or later, root, read-only mounts): an open of a wholly cached
// object gets the cache's data file as its backing file, pinned until release, and the kernel
// serves its reads without plxfs. The kernel admits no other mode beside a passthrough open of
// an inode (a later page-cached or direct-I/O open fails with EIO) and no passthrough beside
// page-cached opens; a writer's open could not be passthrough, so read-write mounts do without.
// The core decides (vfs.Opens); TuneMount probes the kernel once, and where it refuses every
// read goes through plxfs.
//
// # Errors
//
// toErrno (errno.go) is the only place an error becomes an errno; unknown errors are EIO.
// Every refusal plxfs makes is a sentinel (the core's, vfs.Errors, or errno.go's own:
// errTopLevel, errHardLink...), mapped with its errno and log level in one table,
// errnoTable; no other file names an errno (TestNoInlineErrno). Every FUSE method that fails
// returns through FS.fail, which logs one line (op, connection, path, errno, cause) at the
// table's level (debug for refusals the caller can expect, warn for failures) and returns the
// errno. Each FUSE method's doc comment states when the kernel calls it, what it must return,
// what plxfs does and which errnos it returns.
//
// # Locks
//
// The adapter has no lock of its own but FS.reapMu (the splice pipes' reaper, a leaf). The
// core's locks are never held while calling into go-fuse's tree (GetChild, NewInode, Parent,
// Notify*): the core does not call go-fuse at all, so go-fuse's inode locks are never taken
// inside the core's. The core's lock order is in vfs/doc.go.
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
package fs
