package fs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixPromised are the go-fuse POSIX conformance tests whose behaviour SEMANTICS.md promises.
// Not promised: FileBasic (chmod is ignored), Link and LinkUnlinkRename (no hard links),
// XAttr* (no extended attributes), Fallocate*, FcntlFlockLocksFile (no locks across
// processes), Tmpfile (O_TMPFILE).
var posixPromised = []string{
	"AppendWrite", "DirSeek", "DirectIO", "FdLeak", "FileLarge", "FstatDeleted",
	"LseekEnxioCheck", "LseekHoleSeeksToEOF", "MkdirRmdir", "NlinkZero", "OpenAt",
	"ParallelFileOpen", "ReadDirBasic", "ReadDirConsistency", "RenameOpenDir",
	"RenameOverwriteDestExist", "RenameOverwriteDestNoExist", "SetattrSymlink",
	"SymlinkReadlink", "TruncateFile", "TruncateNoFile",
}

// TestSemantics_POSIX runs the promised subset of go-fuse's posixtest suite in a connection
// directory of a real mount.
func TestSemantics_POSIX(t *testing.T) {
	for _, name := range posixPromised {
		fn, ok := posixtest.All[name]
		if !ok {
			t.Fatalf("posixtest has no %s", name)
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, envOptions{chunkSize: 256 << 10})
			dir := e.path("c", "posix")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			fn(t, filepath.Clean(dir))
		})
	}
}
