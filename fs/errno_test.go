package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"github.com/plxfs/plxfs/store"
)

func TestToErrno(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want syscall.Errno
	}{
		{"nil", nil, 0},
		{"bare errno", syscall.ENOTEMPTY, syscall.ENOTEMPTY},
		{"wrapped errno", fmt.Errorf("rmdir %q: %w", "d", syscall.ENOTEMPTY), syscall.ENOTEMPTY},
		{"not exist", fmt.Errorf("stat: %w", store.ErrNotExist), syscall.ENOENT},
		{"precondition", fmt.Errorf("upload %q gen 3: %w", "a", store.ErrPrecondition), syscall.ESTALE},
		{"stale generation", fmt.Errorf("read: %w: %w", errStale, store.ErrNotExist), syscall.ESTALE},
		{"canceled", fmt.Errorf("fetch: %w", context.Canceled), syscall.EINTR},
		{"deadline (--op-timeout)", fmt.Errorf("fetch: %w", context.DeadlineExceeded), syscall.EIO},
		{"unknown", errors.New("boom"), syscall.EIO},
		{"unexpected EOF", fmt.Errorf("chunk: %w", io.ErrUnexpectedEOF), syscall.EIO},
		{"connection reset (net.OpError)", fmt.Errorf("upload: %w", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)}), syscall.EIO},
		{"connection refused (url.Error)", fmt.Errorf("stat: %w", &url.Error{Op: "Get", URL: "http://x", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}), syscall.EIO},
		{"bare ECONNRESET", fmt.Errorf("fsync: %w", syscall.ECONNRESET), syscall.EIO},
		{"EPIPE", fmt.Errorf("write: %w", syscall.EPIPE), syscall.EIO},
		{"ETIMEDOUT", fmt.Errorf("read: %w", syscall.ETIMEDOUT), syscall.EIO},
		{"staging disk full", fmt.Errorf("stage: %w", &os.PathError{Op: "write", Path: "/c/x", Err: syscall.ENOSPC}), syscall.ENOSPC},
		{"quota", fmt.Errorf("stage: %w", syscall.EDQUOT), syscall.EDQUOT},
		{"read-only", syscall.EROFS, syscall.EROFS},
		{"draining (no new stage)", fmt.Errorf("open: stage: %w", errROFS), syscall.EROFS},
		{"permission denied (GCS 403/401)", fmt.Errorf("upload: %w", fmt.Errorf("gcs: write gs://b/x: %w: %w", store.ErrPermission, errors.New("googleapi: Error 403: forbidden"))), syscall.EACCES},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := toErrno(tc.err); got != tc.want {
				t.Errorf("toErrno(%v) = %v (%d), want %v (%d)", tc.err, got, got, tc.want, tc.want)
			}
		})
	}
}
