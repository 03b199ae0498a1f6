package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/plxfs/plxfs/store"
)

// errStale marks a read or write whose pinned object generation is gone: the object was
// overwritten or deleted behind the mount while a handle still referred to the old generation.
// It becomes ESTALE, like a failed generation precondition.
var errStale = errors.New("object generation is gone (changed behind the mount)")

// toErrno is the only place an error becomes an errno. Unknown errors are EIO, never ENOSYS:
// the kernel remembers ENOSYS for some opcodes and stops sending them.
func toErrno(err error) syscall.Errno {
	var errno syscall.Errno
	switch {
	case err == nil:
		return 0
	case errors.As(err, &errno):
		return errno
	case errors.Is(err, errStale):
		return syscall.ESTALE
	case errors.Is(err, store.ErrPrecondition):
		return syscall.ESTALE // SEMANTICS.md "Overwrites": someone else changed the object
	case errors.Is(err, store.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	case errors.Is(err, context.DeadlineExceeded):
		return syscall.EIO // --op-timeout expired: the backend did not answer in time
	}
	return syscall.EIO
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
