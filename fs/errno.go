package fs

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/url"
	"syscall"

	"github.com/plxfs/plxfs/store"
)

// errStale marks a read or write whose pinned object generation is gone: the object was
// overwritten or deleted behind the mount while a handle still referred to the old generation.
// It becomes ESTALE, like a failed generation precondition.
var errStale = errors.New("object generation is gone (changed behind the mount)")

// toErrno is the only place an error becomes an errno. Unknown errors are EIO, never ENOSYS:
// the kernel remembers ENOSYS for some opcodes and stops sending them. An errno found inside
// a network error (a *net.OpError or *url.Error, or a socket errno such as ECONNRESET) is the
// transport's, not the file's: a caller of the mount sees EIO for it, never a socket errno.
// Errnos of local files (the staging area: ENOSPC, EDQUOT, EROFS...) and plxfs's own refusals
// pass through.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case isNetwork(err):
		return syscall.EIO // the backend could not be reached or dropped the connection
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, errStale):
		return syscall.ESTALE
	case errors.Is(err, errROFS):
		return syscall.EROFS // a --read-only mount, or one draining after SIGTERM
	case errors.Is(err, store.ErrPrecondition):
		return syscall.ESTALE // SEMANTICS.md "Overwrites": someone else changed the object
	case errors.Is(err, store.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, store.ErrPermission):
		return syscall.EACCES // GCS 403 or 401: the mount's credentials may not do this
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.EIO // --op-timeout expired: the backend did not answer in time
	}
	return syscall.EIO
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

// fail is how a node method reports an error: one log line at the boundary (op, connection,
// path, cause), then the errno. Expected outcomes (ENOENT from a lookup, EINTR, ENOTEMPTY,
// EEXIST...) are logged at debug level only.
func (f *FS) fail(op string, c *conn, path string, err error) syscall.Errno {
	errno := toErrno(err)
	level := slog.LevelWarn
	switch errno {
	case syscall.ENOENT, syscall.EINTR, syscall.ENOTEMPTY, syscall.EEXIST, syscall.EPERM,
		syscall.EROFS, syscall.ENOTSUP, syscall.EISDIR, syscall.ENOTDIR, syscall.EINVAL, syscall.ENAMETOOLONG:
		level = slog.LevelDebug
	}
	connName := ""
	if c != nil {
		connName = c.name
	}
	f.log.Log(context.Background(), level, "fuse op failed", "op", op, "connection", connName, "path", path, "errno", errno.Error(), "err", err)
	return errno
}
