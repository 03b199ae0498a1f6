package connspec

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// This file turns bytes into a yaml.Node tree (from YAML, or from JSON for the catalog) and
// holds the small helpers that walk such a tree while collecting one-line errors.

// maxAliasDepth bounds alias and merge-key chains; real files use one or two levels.
const maxAliasDepth = 32

// parseYAMLDoc parses exactly one YAML document. Syntax errors name the file and line.
func parseYAMLDoc(file string, data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &Error{Pos: Pos{File: file}, Problem: "the file is empty",
				Fix: "add a connections: list"}
		}
		return nil, yamlSyntaxError(file, err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, yamlSyntaxError(file, err)
	default:
		return nil, &Error{Pos: Pos{File: file, Line: next.Line}, Problem: "a second YAML document starts here",
			Fix: "keep one document per file (remove the extra ---)"}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, &Error{Pos: Pos{File: file}, Problem: "the file is empty", Fix: "add a connections: list"}
		}
		root = root.Content[0]
	}
	return root, nil
}

var yamlLineRE = regexp.MustCompile(`^yaml: (?:line (\d+): )?(.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (as opposed to its scanner). yaml.v3
// reports their line 0-based, and the scanner's 1-based; either way it leaves the line out
// when the 0-based line is 0.
var yamlParserProblems = []string{
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
	"did not find expected '-' indicator", "did not find expected <document start>",
	"did not find expected <stream-start>", "did not find expected key",
	"did not find expected node content", "found duplicate %TAG directive",
	"found duplicate %YAML directive", "found incompatible YAML document",
	"found undefined tag handle",
}

// yamlSyntaxError rewrites "yaml: line 3: did not find expected key" as
// "FILE:4: invalid YAML: did not find expected key; fix the YAML syntax", correcting yaml.v3's
// line numbering. yaml.v3's syntax errors describe the token, never the text around it, so no
// value leaks through them. Errors about anchors have no line.
func yamlSyntaxError(file string, err error) error {
	msg := err.Error()
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return &Error{Pos: Pos{File: file}, Problem: "invalid YAML: " + msg, Fix: "fix the YAML syntax"}
	}
	problem := m[2]
	line, _ := strconv.Atoi(m[1]) // 0 when absent
	switch {
	case strings.HasPrefix(problem, "unknown anchor") || strings.HasPrefix(problem, "anchor "):
		line = 0
	case slices.Contains(yamlParserProblems, problem):
		line++
	case line == 0:
		line = 1
	}
	return &Error{Pos: Pos{File: file, Line: line}, Problem: "invalid YAML: " + problem, Fix: "fix the YAML syntax"}
}

// parseJSONDoc builds a yaml.Node tree from one JSON value, keeping key order. It does not go
// through the YAML parser because JSON escapes such as "\/" are not YAML. Nodes carry no line
// (Line 0). Syntax errors give the byte offset but never the surrounding text, which may hold
// secrets.
func parseJSONDoc(file string, data []byte) (*yaml.Node, error) {
	// json.Unmarshal validates the whole input and gives absolute byte offsets; the decoder
	// below then builds the nodes in key order.
	var probe any
	err := json.Unmarshal(data, &probe)
	var root *yaml.Node
	if err == nil {
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		root, err = jsonValue(dec, 0)
	}
	if err != nil {
		var se *json.SyntaxError
		problem := "invalid JSON: " + err.Error()
		if errors.As(err, &se) {
			// encoding/json quotes the offending character; leave it out, as it may be part
			// of a secret.
			problem = fmt.Sprintf("invalid JSON at byte %d: %s", se.Offset, jsonCharRE.ReplaceAllString(se.Error(), "invalid character"))
		}
		return nil, &Error{Pos: Pos{File: file}, Problem: problem,
			Fix: `it must be a JSON object such as {"connections": [...]}`}
	}
	return root, nil
}

var jsonCharRE = regexp.MustCompile(`invalid character '(?:[^'\\]|\\.)+'`)

// maxJSONDepth bounds nesting so a hostile catalog cannot exhaust the stack.
const maxJSONDepth = 100

func jsonValue(dec *json.Decoder, depth int) (*yaml.Node, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				key, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}, v)
			}
			if _, err := dec.Token(); err != nil { // '}'
				return nil, err
			}
			return n, nil
		case '[':
			n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
			for dec.More() {
				v, err := jsonValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, v)
			}
			if _, err := dec.Token(); err != nil { // ']'
				return nil, err
			}
			return n, nil
		}
		return nil, fmt.Errorf("unexpected %q", rune(t))
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: t}, nil
	case json.Number:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: t.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(t)}, nil
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected token %T", tok)
}

// walker walks a node tree and collects errors. One walker serves one input.
type walker struct {
	file string
	errs []error
}

func (w *walker) pos(n *yaml.Node) Pos {
	if n == nil {
		return Pos{File: w.file}
	}
	return Pos{File: w.file, Line: n.Line}
}

// at is where an error is reported: the subject (connection, init entry) and its name.
type at struct {
	subject string
	conn    string
}

func (w *walker) fail(n *yaml.Node, a at, field, problem, fix string) {
	w.errs = append(w.errs, &Error{Pos: w.pos(n), Subject: a.subject, Connection: a.conn,
		Field: field, Problem: problem, Fix: fix})
}

func (w *walker) err() error { return errors.Join(w.errs...) }

// deref follows aliases. It returns nil for nil, and for chains longer than maxAliasDepth.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i == maxAliasDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// isNull reports a missing value: an explicit null, "~" or an empty value ("key:").
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describe(n *yaml.Node) string {
	switch n = deref(n); {
	case n == nil:
		return "nothing"
	case n.Kind == yaml.MappingNode:
		return "a mapping"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Tag == "!!null":
		return "null"
	default:
		return "a scalar"
	}
}

// entry is one key/value pair of a mapping, after merge keys are expanded. key is the
// canonical spelling (see canonicalKey) and raw the spelling in the file.
type entry struct {
	key, raw string
	keyNode  *yaml.Node
	val      *yaml.Node
}

// entries lists a mapping's pairs in file order, expanding YAML merge keys ("<<: *defaults";
// explicit keys win) and canonicalising key spellings. A key given twice is an error. A key
// that is not a scalar is an error.
func (w *walker) entries(n *yaml.Node, a at, field string) []entry {
	var out []entry
	w.collectEntries(n, a, field, canonicalKey, map[string]bool{}, &out, 0, true)
	return out
}

// rawEntries is entries for mappings whose keys are data (env names, schema keys), not field
// names: spellings are kept as written.
func (w *walker) rawEntries(n *yaml.Node, a at, field string) []entry {
	var out []entry
	w.collectEntries(n, a, field, func(k string) string { return k }, map[string]bool{}, &out, 0, true)
	return out
}

func (w *walker) collectEntries(n *yaml.Node, a at, field string, canon func(string) string, seen map[string]bool, out *[]entry, depth int, explicit bool) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > maxAliasDepth {
		return
	}
	var merges []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merges = append(merges, v)
			continue
		}
		kd := deref(k)
		if kd == nil || kd.Kind != yaml.ScalarNode {
			w.fail(k, a, field, "a key is "+describe(k), "keys must be plain names")
			continue
		}
		key := canon(kd.Value)
		if seen[key] {
			if explicit {
				w.fail(k, a, joinField(field, key), "key given twice", "keep one of them")
			}
			continue
		}
		seen[key] = true
		*out = append(*out, entry{key: key, raw: kd.Value, keyNode: k, val: v})
	}
	// Merged mappings add only the keys not given explicitly; earlier ones win.
	for _, m := range merges {
		m = deref(m)
		if m != nil && m.Kind == yaml.SequenceNode {
			for _, mm := range m.Content {
				w.collectEntries(mm, a, field, canon, seen, out, depth+1, false)
			}
			continue
		}
		w.collectEntries(m, a, field, canon, seen, out, depth+1, false)
	}
}

// snakeKeys maps the snake_case spellings that Polyaxon's Python models also accept to the
// camelCase aliases used in its YAML.
var snakeKeys = map[string]string{
	"config_map":      "configMap",
	"is_alias":        "isAlias",
	"mount_path":      "mountPath",
	"default_mode":    "defaultMode",
	"host_path":       "hostPath",
	"is_requested":    "isRequested",
	"value_from":      "valueFrom",
	"run_patch":       "runPatch",
	"patch_strategy":  "patchStrategy",
	"artifacts_store": "artifactsStore",
	"lineage_ref":     "lineageRef",
	"model_ref":       "modelRef",
	"artifact_ref":    "artifactRef",
}

func canonicalKey(k string) string {
	if c, ok := snakeKeys[k]; ok {
		return c
	}
	return k
}

func joinField(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// mapping checks that n is a mapping (or null, reported as absent) and lists its entries.
func (w *walker) mapping(n *yaml.Node, a at, field, fix string) ([]entry, bool) {
	if isNull(n) {
		return nil, false
	}
	if deref(n).Kind != yaml.MappingNode {
		w.fail(n, a, field, "expected a mapping, got "+describe(n), fix)
		return nil, false
	}
	return w.entries(n, a, field), true
}

// sequence checks that n is a list (or null, reported as absent) and returns its items.
func (w *walker) sequence(n *yaml.Node, a at, field, fix string) ([]*yaml.Node, bool) {
	if isNull(n) {
		return nil, false
	}
	d := deref(n)
	if d.Kind != yaml.SequenceNode {
		w.fail(n, a, field, "expected a list, got "+describe(n), fix)
		return nil, false
	}
	return d.Content, true
}

// scalar returns a scalar's text. Null is "" and false (absent); a list or mapping is an error.
// Non-string scalars (numbers, booleans) are taken literally: name: 2024 is the name "2024".
func (w *walker) scalar(n *yaml.Node, a at, field string) (string, bool) {
	if isNull(n) {
		return "", false
	}
	d := deref(n)
	if d.Kind != yaml.ScalarNode {
		w.fail(n, a, field, "expected a string, got "+describe(n), "write a single value")
		return "", false
	}
	return d.Value, true
}

// unknownKey reports a key that is not one of known, with a "did you mean".
func (w *walker) unknownKey(e entry, a at, field string, known []string) {
	w.fail(e.keyNode, a, joinField(field, e.raw), "unknown key", suggestFix(e.raw, known))
}
