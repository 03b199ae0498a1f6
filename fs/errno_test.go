package fs

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"unicode"

	"github.com/plxfs/plxfs/store"

	"github.com/plxfs/plxfs/vfs"
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
		{"draining (no new stage)", fmt.Errorf("open: stage: %w", errDraining), syscall.EROFS},
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

// TestErrnoTableCoversEverySentinel fails when a package-level error variable (var errX = ...)
// of package fs has no row in errnoTable, or when a row's errno is not what toErrno returns for
// it wrapped.
func TestErrnoTableCoversEverySentinel(t *testing.T) {
	mapped := map[error]syscall.Errno{}
	for _, r := range errnoTable {
		mapped[r.err] = r.errno
		wrapped := fmt.Errorf("op %q: %w", "p", r.err)
		if got := toErrno(wrapped); got != r.errno {
			t.Errorf("toErrno(%v) = %v, want %v (an earlier row matches it?)", wrapped, got, r.errno)
		}
	}
	names := sentinelNames(t)
	if len(names) < 10 {
		t.Fatalf("found only %d sentinels (%v): the scan is broken", len(names), names)
	}
	for _, name := range names {
		err, ok := sentinels[name]
		if !ok {
			t.Errorf("sentinel %s is not in the sentinels list of errno_test.go", name)
			continue
		}
		if _, ok := mapped[err]; !ok {
			t.Errorf("sentinel %s (%q) has no row in errnoTable", name, err)
		}
	}
}

// sentinels names every error variable of the package; sentinelNames checks it is complete.
var sentinels = map[string]error{
	"errReadOnly": errReadOnly, "errDraining": errDraining, "errStale": errStale,
	"errTopLevel": errTopLevel, "errHardLink": errHardLink, "errReservedName": errReservedName,
	"errSpecialNoPOSIX": errSpecialNoPOSIX, "errNameTooLong": errNameTooLong,
	"errObjectNameTooLong": errObjectNameTooLong, "errHiddenName": errHiddenName,
	"errBadObjectName": errBadObjectName, "errFileType": errFileType, "errRenameFlags": errRenameFlags,
	"errIntoItself": errIntoItself, "errExists": errExists, "errNotEmpty": errNotEmpty,
	"errIsDir": errIsDir, "errNotDir": errNotDir, "errCrossConnection": errCrossConnection,
	"errNotInListing": errNotInListing, "errNotUploaded": errNotUploaded, "errNotWritable": errNotWritable,
}

// sentinelNames lists the package-level variables named err... in the package's non-test files.
func sentinelNames(t *testing.T) []string {
	t.Helper()
	var names []string
	for _, f := range parsePackage(t) {
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.VAR {
				continue
			}
			for _, spec := range gd.Specs {
				for _, id := range spec.(*ast.ValueSpec).Names {
					if strings.HasPrefix(id.Name, "err") && len(id.Name) > 3 && unicode.IsUpper(rune(id.Name[3])) {
						names = append(names, id.Name)
					}
				}
			}
		}
	}
	return names
}

// TestNoInlineErrno fails when a non-test file other than errno.go names an errno constant
// (syscall.EPERM...): a refusal is a sentinel mapped in errnoTable, so that it is logged and its
// errno decided in one place.
func TestNoInlineErrno(t *testing.T) {
	fset := token.NewFileSet()
	for name, f := range parsePackageFset(t, fset) {
		if filepath.Base(name) == "errno.go" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "syscall" && isErrnoName(sel.Sel.Name) {
				t.Errorf("%s: syscall.%s: return a sentinel of errno.go instead", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

// isErrnoName reports whether name is an errno constant's (E followed by capitals or digits).
func isErrnoName(name string) bool {
	if len(name) < 2 || name[0] != 'E' {
		return false
	}
	for _, r := range name[1:] {
		if !unicode.IsUpper(r) && !unicode.IsDigit(r) {
			return false
		}
	}
	return true
}

// TestSemanticsReferencesResolve fails when a comment of the package cites a section of
// SEMANTICS.md (the file name, then the heading in double quotes) that has no such heading.
func TestSemanticsReferencesResolve(t *testing.T) {
	doc, err := os.ReadFile("../SEMANTICS.md")
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for _, line := range strings.Split(string(doc), "\n") {
		if h, ok := strings.CutPrefix(line, "## "); ok {
			headings[strings.TrimSpace(h)] = true
		}
	}
	ref := regexp.MustCompile(`SEMANTICS\.md\s+(?://\s*)?"([^"]+)"`)
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ref.FindAllStringSubmatch(string(src), -1) {
			found++
			if !headings[m[1]] {
				t.Errorf("%s cites SEMANTICS.md %q, which has no such section", name, m[1])
			}
		}
	}
	if found == 0 {
		t.Fatal("no SEMANTICS.md references found: the scan is broken")
	}
}

func parsePackage(t *testing.T) map[string]*ast.File {
	return parsePackageFset(t, token.NewFileSet())
}

// parsePackageFset parses the package's non-test files.
func parsePackageFset(t *testing.T, fset *token.FileSet) map[string]*ast.File {
	t.Helper()
	names, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]*ast.File{}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = f
	}
	return files
}

// TestFailLevels pins the logging rule of errno.go: refusals the caller can expect are debug,
// failures someone should hear of are warnings.
func TestFailLevels(t *testing.T) {
	tests := []struct {
		err  error
		want slog.Level
	}{
		{fmt.Errorf("lookup: %w", store.ErrNotExist), slog.LevelDebug},
		{fmt.Errorf("mkdir: %w", errExists), slog.LevelDebug},
		{errCrossConnection, slog.LevelDebug},
		{fmt.Errorf("stage: %w", errDraining), slog.LevelDebug},
		{context.Canceled, slog.LevelDebug},
		{errors.Join(errStale, store.ErrNotExist), slog.LevelWarn},
		{fmt.Errorf("upload: %w", store.ErrPrecondition), slog.LevelWarn},
		{fmt.Errorf("upload: %w", store.ErrPermission), slog.LevelWarn},
		{fmt.Errorf("stage: %w", syscall.ENOSPC), slog.LevelWarn},
		{fmt.Errorf("upload: %w", syscall.ECONNRESET), slog.LevelWarn},
		{errors.New("boom"), slog.LevelWarn},
	}
	for _, tc := range tests {
		if _, got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) level = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestFUSEMethodsDocumented fails when an exported method of a node or handle type (a FUSE
// operation, by go-fuse's naming) has no doc comment: each states its kernel contract.
func TestFUSEMethodsDocumented(t *testing.T) {
	types := map[string]bool{"rootNode": true, "dirNode": true, "dirHandle": true, "fileNode": true,
		"fileHandle": true, "passthroughHandle": true, "leafNode": true}
	fset := token.NewFileSet()
	count := 0
	for _, f := range parsePackageFset(t, fset) {
		for _, decl := range f.Decls {
			fd, ok := decl.(*ast.FuncDecl)
			if !ok || fd.Recv == nil || !fd.Name.IsExported() {
				continue
			}
			recv := fd.Recv.List[0].Type
			if star, ok := recv.(*ast.StarExpr); ok {
				recv = star.X
			}
			if id, ok := recv.(*ast.Ident); !ok || !types[id.Name] {
				continue
			}
			count++
			if fd.Doc == nil {
				t.Errorf("%s: %s has no doc comment stating its kernel contract", fset.Position(fd.Pos()), fd.Name.Name)
			}
		}
	}
	if count < 40 {
		t.Fatalf("found only %d FUSE methods: the scan is broken", count)
	}
}

// TestErrnoTableCoversCoreErrors: every sentinel of the core (package vfs) has a row in
// errnoTable, the one mapping.
func TestErrnoTableCoversCoreErrors(t *testing.T) {
	for _, err := range vfs.Errors {
		found := false
		for _, r := range errnoTable {
			found = found || r.err == err
		}
		if !found {
			t.Errorf("core sentinel %q has no row in errnoTable", err)
		}
	}
}
