package fs

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"syscall"

	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/vfs"
)

// Errors and errnos.
//
// Every refusal plxfs makes itself is one of the sentinels below; code under the FUSE methods
// returns it (wrapped with %w when a detail helps the log), never a bare errno. Every FUSE
// method that fails returns through FS.fail, which looks the error up in errnoTable (toErrno),
// logs one line and returns the errno: no other place makes an errno, and no failure goes
// unlogged. Below that boundary errors are wrapped, not logged.
//
// Log levels, the rule: a row of errnoTable carries its level.
//
//   - Debug: a refusal the caller can expect, because SEMANTICS.md states the rule (a name that
//     does not exist, EEXIST, ENOTEMPTY, EXDEV, a read-only or draining mount, a hard link...),
//     and an interrupted call. Tools meet these all the time (`mkdir -p`, `mv` across
//     connections, every lookup of a missing name), so a warning would drown the log, and
//     `plxfs status` would list them as recent errors.
//   - Warn: the mount could not do what was asked and someone should hear of it: the backend
//     failed or did not answer (EIO), someone else changed the object (ESTALE), the
//     credentials were refused (EACCES), a rename target not yet uploaded (EBUSY). Errors no
//     row matches (EIO), and errnos of the local disk that pass through (ENOSPC, EDQUOT, EROFS
//     of the staging directory...), are warnings too.

// Refusals. Each is mapped in errnoTable; TestErrnoTableCoversEverySentinel fails for a
// package-level err... variable the table does not map.
var (
	errReadOnly = vfs.ErrReadOnly
	errDraining = vfs.ErrDraining
	// errStale marks a read, write or metadata patch whose object generation is gone: the
	// object was overwritten or deleted behind the mount while this mount still referred to
	// the old generation.
	errStale = vfs.ErrStale

	errTopLevel       = errors.New("the mountpoint holds the connections only; nothing can be created, removed or renamed there")
	errHardLink       = errors.New("hard links are not supported: an object has one name")
	errReservedName   = vfs.ErrReservedName
	errSpecialNoPOSIX = vfs.ErrSpecialNoPOSIX

	errNameTooLong       = vfs.ErrNameTooLong
	errObjectNameTooLong = vfs.ErrObjectNameTooLong
	errHiddenName        = vfs.ErrHiddenName
	errBadObjectName     = vfs.ErrBadObjectName
	errFileType          = vfs.ErrFileType
	errRenameFlags       = errors.New("unsupported rename flags (RENAME_EXCHANGE, RENAME_WHITEOUT)")
	errIntoItself        = vfs.ErrIntoItself

	errExists          = vfs.ErrExists
	errNotEmpty        = vfs.ErrNotEmpty
	errIsDir           = vfs.ErrIsDir
	errNotDir          = vfs.ErrNotDir
	errCrossConnection = vfs.ErrCrossConnection
	errNotInListing    = errors.New("not in the directory's listing")
	errNotUploaded     = vfs.ErrNotUploaded
	errNotWritable     = vfs.ErrNotWritable
)

// errnoRule maps errors that match err (errors.Is) to errno, logged at level.
type errnoRule struct {
	err   error
	errno syscall.Errno
	level slog.Level
}

// errnoTable is the one mapping from errors to errnos, searched in order (the first match
// wins: errStale before store.ErrNotExist, which it often wraps). See the rule for levels
// above, and SEMANTICS.md "Errors" for the contract.
var errnoTable = []errnoRule{
	{errReadOnly, syscall.EROFS, slog.LevelDebug},
	{errDraining, syscall.EROFS, slog.LevelDebug},
	{errStale, syscall.ESTALE, slog.LevelWarn},

	{errTopLevel, syscall.EPERM, slog.LevelDebug},
	{errHardLink, syscall.EPERM, slog.LevelDebug},
	{errReservedName, syscall.EPERM, slog.LevelDebug},
	{errSpecialNoPOSIX, syscall.EPERM, slog.LevelDebug},

	{errNameTooLong, syscall.ENAMETOOLONG, slog.LevelDebug},
	{errObjectNameTooLong, syscall.ENAMETOOLONG, slog.LevelDebug},
	{errHiddenName, syscall.ENOENT, slog.LevelDebug}, // looked up; a new file of such a name is errBadObjectName
	{errBadObjectName, syscall.EINVAL, slog.LevelDebug},
	{errFileType, syscall.EINVAL, slog.LevelDebug},
	{errRenameFlags, syscall.EINVAL, slog.LevelDebug},
	{errIntoItself, syscall.EINVAL, slog.LevelDebug},

	{errExists, syscall.EEXIST, slog.LevelDebug},
	{errNotEmpty, syscall.ENOTEMPTY, slog.LevelDebug},
	{errIsDir, syscall.EISDIR, slog.LevelDebug},
	{errNotDir, syscall.ENOTDIR, slog.LevelDebug},
	{errCrossConnection, syscall.EXDEV, slog.LevelDebug},
	{errNotInListing, syscall.ENOENT, slog.LevelDebug},
	{errNotUploaded, syscall.EBUSY, slog.LevelWarn},
	{errNotWritable, syscall.EBADF, slog.LevelWarn}, // the kernel checks the open mode first: plxfs should never see it

	// The store's errors (package store maps GCS's answers to these).
	{store.ErrPrecondition, syscall.ESTALE, slog.LevelWarn}, // someone else changed the object (SEMANTICS.md "Writes")
	{store.ErrNotExist, syscall.ENOENT, slog.LevelDebug},
	{store.ErrPermission, syscall.EACCES, slog.LevelWarn},   // GCS 403 or 401: the mount's credentials may not do this
	{context.Canceled, syscall.EINTR, slog.LevelDebug},      // the caller was interrupted
	{context.DeadlineExceeded, syscall.EIO, slog.LevelWarn}, // --op-timeout expired: the backend did not answer in time
}

// toErrno is the only place an error becomes an errno. Unknown errors are EIO, never ENOSYS:
// the kernel remembers ENOSYS for some opcodes and stops sending them. An errno found inside
// a network error (a *net.OpError or *url.Error, or a socket errno such as ECONNRESET) is the
// transport's, not the file's: a caller of the mount sees EIO for it, never a socket errno.
// Errnos of local files (the staging area: ENOSPC, EDQUOT, EROFS...) pass through; every
// other error is looked up in errnoTable.
func toErrno(err error) syscall.Errno {
	errno, _ := classify(err)
	return errno
}

// classify is toErrno with the level the failure is logged at.
func classify(err error) (syscall.Errno, slog.Level) {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0, slog.LevelDebug
	case isNetwork(err):
		return syscall.EIO, slog.LevelWarn // the backend could not be reached or dropped the connection
	case errors.As(err, &errno):
		return errno, slog.LevelWarn // the local disk's (staging)
	}
	for _, r := range errnoTable {
		if errors.Is(err, r.err) {
			return r.errno, r.level
		}
	}
	return syscall.EIO, slog.LevelWarn
}

// isNetwork reports whether err came from the network below the storage client.
func isNetwork(err error) bool {
	var (
		op    *net.OpError
		uerr  *url.Error
		errno syscall.Errno
	)
	if errors.As(err, &op) || errors.As(err, &uerr) {
		return true
	}
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ETIMEDOUT, syscall.ENETDOWN, syscall.ENETUNREACH, syscall.ENETRESET,
		syscall.EHOSTDOWN, syscall.EHOSTUNREACH, syscall.ENOTCONN, syscall.ESHUTDOWN:
		return true
	}
	return false
}

// fail is how a FUSE method reports an error, the one path every failure takes: one log line
// at the level errnoTable gives (op, connection, path, errno, cause), then the errno. c is nil
// for the mountpoint's own directory.
func (f *FS) fail(op string, c *conn, path string, err error) syscall.Errno {
	errno, level := classify(err)
	if !f.log.Enabled(context.Background(), level) {
		return errno
	}
	connName := ""
	if c != nil {
		connName = c.name
	}
	f.log.Log(context.Background(), level, "fuse op failed", "op", op, "connection", connName, "path", path, "errno", errno.Error(), "err", err)
	return errno
}

// changesRefused is why the mount refuses changes now (errReadOnly, errDraining), or nil.
func (f *FS) changesRefused() error { return f.core.Refused() }
