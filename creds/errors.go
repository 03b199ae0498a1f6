package creds

import (
	"fmt"
	"strings"

	"github.com/plxfs/plxfs/connspec"
)

// Error is a credential problem for one connection: which connection, which source (an
// environment variable, a file path, a mounted secret; never a value that could be key
// material) and what is wrong, with what to do about it.
type Error struct {
	Connection string
	Pos        connspec.Pos // where the connection is defined; zero when unknown
	Source     string
	Err        error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "connection %q", e.Connection)
	if e.Pos.File != "" {
		if e.Pos.Line > 0 {
			fmt.Fprintf(&b, " (%s:%d)", e.Pos.File, e.Pos.Line)
		} else {
			fmt.Fprintf(&b, " (%s)", e.Pos.File)
		}
	}
	fmt.Fprintf(&b, ": credentials from %s: %v", e.Source, e.Err)
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }
