package connspec

import (
	"errors"
	"fmt"
	"strings"
)

// Error is one problem found in a connection spec, a catalog or a Polyaxonfile. Its message is
// one line:
//
//	FILE:LINE: SUBJECT: FIELD: PROBLEM; FIX
//
// where ":LINE" is left out when the line is unknown (Pos.Line == 0, as for the JSON catalog from
// the environment) and "SUBJECT: " / "FIELD: " are left out when empty. An Error never holds a
// secret value (env values, schema values other than bucket, key material): only names, kinds,
// bucket URLs and paths.
type Error struct {
	Pos Pos
	// Subject is what the problem is about, already formatted: `connection "gcs-data"`,
	// `connection #3` (unnamed, 1-based), `run.init[2]`, or "" for the file as a whole.
	Subject string
	// Connection is the connection's name when the problem is inside a named connection.
	Connection string
	// Field is the dotted key path inside the subject: "name", "schema.bucket", "secret.mountPath".
	Field   string
	Problem string
	// Fix says what to do, in the imperative ("rename one of them").
	Fix string
	// Selection marks Select's errors about a requested name (not in the catalog, or not a
	// gcs connection): the request is wrong, not the file. See IsSelectionError.
	Selection bool
}

// IsSelectionError reports whether err holds (wraps or joins) an error of Select about a
// requested connection name: one that is not in the catalog or is not a gcs connection.
func IsSelectionError(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Selection
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Pos.String())
	b.WriteString(": ")
	if e.Subject != "" {
		b.WriteString(e.Subject)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Problem)
	if e.Fix != "" {
		b.WriteString("; ")
		b.WriteString(e.Fix)
	}
	return oneLine(b.String())
}

// String formats the position as "FILE:LINE", or "FILE" when the line is unknown.
func (p Pos) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// oneLine keeps an error on one line whatever text ends up in it.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(s)
}

// connSubject names a connection for error messages: by name when it has one, else by its
// 1-based position in the list.
func connSubject(name string, index int) string {
	if name != "" {
		return fmt.Sprintf("connection %q", name)
	}
	return fmt.Sprintf("connection #%d", index)
}
