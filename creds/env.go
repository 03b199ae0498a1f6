package creds

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Env is everything Resolve may read from the outside world. Resolve calls nothing else, so a
// test hands it a map and an in-memory filesystem (see EnvFrom) and the real process is never
// touched.
type Env struct {
	// LookupEnv reports a process environment variable, as os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// ReadFile returns a file's contents, as os.ReadFile. Errors satisfying
	// errors.Is(err, fs.ErrNotExist) mean "no such file".
	ReadFile func(string) ([]byte, error)
	// Stat describes a file, following symbolic links (Kubernetes secret volumes are made of
	// them), as os.Stat.
	Stat func(string) (fs.FileInfo, error)
}

// maxFileSize bounds every file Resolve reads. Key files are a few KiB; the bound keeps a key
// path that points at a device (/dev/zero) or a huge file from hanging or exhausting memory.
const maxFileSize = 1 << 20

// OSEnv is the real process environment and filesystem. Reads are capped at 1 MiB.
func OSEnv() Env {
	return Env{
		LookupEnv: os.LookupEnv,
		ReadFile:  readFileLimited,
		Stat:      os.Stat,
	}
}

// readFileLimited is os.ReadFile with the maxFileSize cap.
func readFileLimited(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	if len(b) > maxFileSize {
		return nil, &fs.PathError{Op: "read", Path: name, Err: errTooLarge}
	}
	return b, nil
}

var errTooLarge = fmt.Errorf("larger than %d bytes, so not a key file", maxFileSize)

// EnvFrom builds an Env from a variable map and a filesystem whose root stands for "/": the
// file "/etc/gcs/gc-secret.json" is "etc/gcs/gc-secret.json" in fsys. Relative names are
// resolved from the root too. It is meant for tests (typically with an fstest.MapFS) and for
// callers that want to dry-run resolution against a snapshot. A nil fsys has no files.
func EnvFrom(vars map[string]string, fsys fs.FS) Env {
	copied := make(map[string]string, len(vars))
	for k, v := range vars {
		copied[k] = v
	}
	rel := func(name string) string {
		r := strings.TrimPrefix(path.Clean("/"+name), "/")
		if r == "" {
			return "."
		}
		return r
	}
	noFS := func(name string) error { return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist} }
	return Env{
		LookupEnv: func(k string) (string, bool) {
			v, ok := copied[k]
			return v, ok
		},
		ReadFile: func(name string) ([]byte, error) {
			if fsys == nil {
				return nil, noFS(name)
			}
			b, err := fs.ReadFile(fsys, rel(name))
			if err != nil {
				return nil, renamePathError(err, name)
			}
			if len(b) > maxFileSize {
				return nil, &fs.PathError{Op: "read", Path: name, Err: errTooLarge}
			}
			return b, nil
		},
		Stat: func(name string) (fs.FileInfo, error) {
			if fsys == nil {
				return nil, noFS(name)
			}
			fi, err := fs.Stat(fsys, rel(name))
			return fi, renamePathError(err, name)
		},
	}
}

// renamePathError reports a *fs.PathError under the caller's name rather than fsys's.
func renamePathError(err error, name string) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: pe.Op, Path: name, Err: pe.Err}
	}
	return err
}
