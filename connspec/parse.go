package connspec

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Catalog is the list of connections read from one source, in source order.
type Catalog struct {
	Connections []Connection
	// Source names where the catalog came from: a file name or "$POLYAXON_CONNECTIONS_CATALOG".
	Source string
}

// CatalogEnv is the environment variable through which Polyaxon v2 passes connections (JSON
// {"connections": [...]}) into a job's containers.
const CatalogEnv = "POLYAXON_CONNECTIONS_CATALOG"

// ConfigEnv is the environment variable that names a connections file, like --config.
const ConfigEnv = "PLXFS_CONFIG"

// catalogSource is the Pos.File of connections read from CatalogEnv.
const catalogSource = "$" + CatalogEnv

// ParseYAML reads connections from a YAML file: a top-level "connections:" and/or
// "persistence:" list, or a Polyaxon deployment/agent config (Helm values) containing one.
// Where it looks, in order:
//  1. top-level "connections:" and "persistence:" lists (both are read, in file order), and a
//     top-level "artifactsStore:" connection unless a listed connection has the same name;
//  2. if there are none, the same keys one level down (for example under "agent:" or
//     "polyaxon:"); finding them under two different keys is an error, since plxfs cannot guess.
//
// Every other key is ignored. The file must hold one YAML document. Every problem is reported,
// each as one line naming file, line, connection and field (see Error); the returned error
// joins them.
func ParseYAML(file string, data []byte) (*Catalog, error) {
	root, err := parseYAMLDoc(file, data)
	if err != nil {
		return nil, err
	}
	return buildCatalog(file, root, true)
}

// ParseCatalogJSON reads the JSON catalog Polyaxon puts in $POLYAXON_CONNECTIONS_CATALOG:
// {"connections": [...]}, each connection as in a YAML file. source names it in errors and in
// Catalog.Source (Load passes "$POLYAXON_CONNECTIONS_CATALOG"); positions have no line.
func ParseCatalogJSON(source string, data []byte) (*Catalog, error) {
	root, err := parseJSONDoc(source, data)
	if err != nil {
		return nil, err
	}
	return buildCatalog(source, root, false)
}

// LoadOptions says where Load finds connections. Nil functions use the real process
// environment and file system (os.LookupEnv, os.ReadFile); tests inject their own.
type LoadOptions struct {
	// ConfigFile is the --config flag; "" falls back to $PLXFS_CONFIG, then to the catalog.
	ConfigFile string
	LookupEnv  func(string) (string, bool)
	ReadFile   func(string) ([]byte, error)
}

// Load reads the connections catalog from, in order: opts.ConfigFile; the file named by
// $PLXFS_CONFIG; the JSON in $POLYAXON_CONNECTIONS_CATALOG. An empty variable counts as unset.
// With none of them it returns an error that says how to provide connections.
func Load(opts LoadOptions) (*Catalog, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	read := opts.ReadFile
	if read == nil {
		read = os.ReadFile
	}
	file, how := opts.ConfigFile, "--config"
	if file == "" {
		if v, ok := lookup(ConfigEnv); ok && v != "" {
			file, how = v, "$"+ConfigEnv
		}
	}
	if file != "" {
		data, err := read(file)
		if err != nil {
			return nil, fmt.Errorf("%s %s: cannot read the connections file: %w; check the path and its permissions", how, file, err)
		}
		return ParseYAML(file, data)
	}
	if v, ok := lookup(CatalogEnv); ok && strings.TrimSpace(v) != "" {
		return ParseCatalogJSON(catalogSource, []byte(v))
	}
	return nil, fmt.Errorf("no connections given: pass --config FILE (or set %s=FILE) naming a YAML file with a connections: list, or run inside a Polyaxon job, which sets %s", ConfigEnv, CatalogEnv)
}

// listKeys are the keys whose value is a list of connections.
var listKeys = []string{"connections", "persistence"}

// found is a place in the file where connections were found.
type found struct {
	parent string     // "" for top level, else the key it was nested under
	lists  []entry    // connections:/persistence: entries
	store  *yaml.Node // artifactsStore:, or nil
}

func (f found) empty() bool { return len(f.lists) == 0 && f.store == nil }

func buildCatalog(file string, root *yaml.Node, allowNested bool) (*Catalog, error) {
	w := &walker{file: file}
	if r := deref(root); r == nil || r.Kind != yaml.MappingNode {
		return nil, &Error{Pos: w.pos(root), Problem: "expected a mapping at the top, got " + describe(root),
			Fix: "start the file with connections: followed by a list"}
	}
	top := findConnections(w, root, "")
	chosen := top
	if top.empty() && allowNested {
		var nested []found
		for _, e := range (&walker{file: w.file}).entries(root, at{}, "") {
			if v := deref(e.val); v != nil && v.Kind == yaml.MappingNode {
				if f := findConnections(w, v, e.raw); !f.empty() {
					nested = append(nested, f)
				}
			}
		}
		switch len(nested) {
		case 0:
		case 1:
			chosen = nested[0]
		default:
			var where []string
			for _, f := range nested {
				where = append(where, fmt.Sprintf("%s: (line %d)", f.parent, firstLine(f)))
			}
			return nil, &Error{Pos: w.pos(root), Field: "connections",
				Problem: "connections found in more than one place: " + strings.Join(where, ", "),
				Fix:     "pass a file with a single connections: list"}
		}
	}
	if chosen.empty() {
		return nil, notFoundError(w, root)
	}
	cat := &Catalog{Source: file}
	index := 0
	for _, l := range chosen.lists {
		items, ok := w.sequence(l.val, at{}, qualify(chosen.parent, l.raw), "write a list of connections, each starting with \"- name:\"")
		if !ok && isNull(l.val) {
			continue // "connections:" with nothing under it is an empty list
		}
		for _, item := range items {
			index++
			if c, ok := parseConnection(w, item, index); ok {
				cat.Connections = append(cat.Connections, c)
			}
		}
	}
	if chosen.store != nil {
		index++
		if c, ok := parseConnection(w, chosen.store, index); ok && !hasName(cat.Connections, c.Name) {
			cat.Connections = append(cat.Connections, c)
		}
	}
	checkUnique(w, cat.Connections)
	if err := w.err(); err != nil {
		return nil, err
	}
	return cat, nil
}

// findConnections looks for the connection keys directly inside mapping n.
func findConnections(w *walker, n *yaml.Node, parent string) found {
	f := found{parent: parent}
	// A nested mapping may be anything (Helm values), so its problems are not ours: read it
	// with a scratch walker and keep only the complaints about the keys plxfs reads.
	scratch := &walker{file: w.file}
	for _, e := range scratch.entries(n, at{}, "") {
		switch {
		case slices.Contains(listKeys, e.key):
			if v := deref(e.val); v != nil && v.Kind == yaml.MappingNode && e.key == "persistence" {
				continue // Polyaxon v0's persistence mapping (data/outputs); not connections
			}
			f.lists = append(f.lists, e)
		case e.key == "artifactsStore":
			if v := deref(e.val); v != nil && v.Kind == yaml.MappingNode {
				f.store = e.val
			}
		}
	}
	for _, err := range scratch.errs {
		if e, ok := err.(*Error); ok && (slices.Contains(listKeys, e.Field) || e.Field == "artifactsStore") {
			e.Field = qualify(parent, e.Field)
			w.errs = append(w.errs, e)
		}
	}
	return f
}

func firstLine(f found) int {
	if len(f.lists) > 0 {
		return f.lists[0].keyNode.Line
	}
	return f.store.Line
}

func qualify(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func notFoundError(w *walker, root *yaml.Node) error {
	problem := "no connections found"
	for _, e := range (&walker{file: w.file}).entries(root, at{}, "") {
		if e.key == "persistence" {
			problem = "persistence: is a mapping (the Polyaxon v0 format), not a list of connections"
		}
	}
	return &Error{Pos: Pos{File: w.file}, Problem: problem,
		Fix: "add a top-level connections: list (or persistence:, or one under agent:), each item with name, kind and schema.bucket"}
}

func hasName(cs []Connection, name string) bool {
	for _, c := range cs {
		if c.Name == name {
			return true
		}
	}
	return false
}

// checkUnique reports the second and later uses of a name, pointing at the first.
func checkUnique(w *walker, cs []Connection) {
	first := map[string]Pos{}
	for _, c := range cs {
		if c.Name == "" {
			continue
		}
		if p, dup := first[c.Name]; dup {
			w.errs = append(w.errs, &Error{Pos: c.Pos, Subject: connSubject(c.Name, 0), Connection: c.Name,
				Field: "name", Problem: "the same name as the connection at " + p.String(),
				Fix: "give each connection its own name (it becomes the directory name)"})
			continue
		}
		first[c.Name] = c.Pos
	}
}

// parseDefaultMode reads a file mode given as a number (YAML/JSON 256, 0400, 0o400) or a string
// ("0400", "256"), as Polyaxon accepts both.
func parseDefaultMode(s string) (int, error) {
	s = strings.TrimSpace(s)
	if len(s) > 1 && s[0] == '0' && s[1] >= '0' && s[1] <= '9' {
		s = "0o" + s[1:] // a leading 0 means octal, as in YAML 1.1 and Kubernetes manifests
	}
	v, err := strconv.ParseInt(s, 0, 32)
	if err != nil || v < 0 || v > 0o777 {
		return 0, fmt.Errorf("not a file mode")
	}
	return int(v), nil
}
