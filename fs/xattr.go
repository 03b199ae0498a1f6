package fs

import (
	"context"
	"syscall"

	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// noXattrs answers extended-attribute calls for every node type: there are none, and setting
// one is not supported (SEMANTICS.md "Not supported"). Embedded in the node types.
type noXattrs struct{}

var (
	_ = (fusefs.NodeGetxattrer)((*fileNode)(nil))
	_ = (fusefs.NodeSetxattrer)((*fileNode)(nil))
	_ = (fusefs.NodeListxattrer)((*dirNode)(nil))
	_ = (fusefs.NodeRemovexattrer)((*symlinkNode)(nil))
)

func (noXattrs) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return 0, syscall.ENODATA
}

func (noXattrs) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.ENOTSUP
}

func (noXattrs) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENODATA
}

func (noXattrs) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return 0, 0
}
