package connspec

import (
	"errors"
	"fmt"
	"strings"
)

// Select returns the connections to mount. With no names it returns every gcs connection in
// catalog order, ignoring the others, and fails if there is none. With names it returns exactly
// those, in the order given (a name repeated is taken once); a name not in the catalog is an
// error listing the known names, and a selected connection whose kind is not gcs is an error
// naming it and its kind. All problems are reported, joined, one per line.
func (c *Catalog) Select(names []string) ([]Connection, error) {
	src := Pos{File: c.Source}
	if len(names) == 0 {
		var out []Connection
		var others []string
		for _, conn := range c.Connections {
			if conn.Mountable() {
				out = append(out, conn)
			} else {
				others = append(others, fmt.Sprintf("%s (%s)", conn.Name, conn.Kind))
			}
		}
		if len(out) == 0 {
			problem := "no gcs connections"
			if len(others) > 0 {
				problem += "; only " + strings.Join(others, ", ")
			}
			return nil, &Error{Pos: src, Problem: problem, Fix: "add a connection with kind: gcs and schema.bucket: gs://BUCKET"}
		}
		return out, nil
	}

	byName := make(map[string]int, len(c.Connections))
	for i, conn := range c.Connections {
		byName[conn.Name] = i
	}
	var out []Connection
	var errs []error
	seen := map[string]bool{}
	for _, name := range names {
		if seen[name] {
			continue
		}
		seen[name] = true
		i, ok := byName[name]
		if !ok {
			errs = append(errs, &Error{Pos: src, Subject: connSubject(name, 0), Connection: name,
				Problem: "not found", Fix: c.knownNames(), Selection: true})
			continue
		}
		conn := c.Connections[i]
		if !conn.Mountable() {
			errs = append(errs, &Error{Pos: conn.Pos, Subject: connSubject(name, 0), Connection: name, Field: "kind",
				Problem: fmt.Sprintf("kind %q is not supported by plxfs, which mounts gcs connections only", conn.Kind),
				Fix:     "remove it from the selection (run.connections or --connections)", Selection: true})
			continue
		}
		out = append(out, conn)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Catalog) knownNames() string {
	if len(c.Connections) == 0 {
		return "the catalog has no connections"
	}
	names := make([]string, len(c.Connections))
	for i, conn := range c.Connections {
		names[i] = conn.Name
	}
	return "known connections: " + strings.Join(names, ", ")
}
