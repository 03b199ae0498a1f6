package connspec

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Polyaxonfile is what plxfs needs from a Polyaxon component or operation file.
type Polyaxonfile struct {
	File string
	// Connections is run.connections: the names of the connections the job uses, in file
	// order, each once. Empty when the file does not list any.
	Connections []string
	// Init lists run.init's artifacts entries, in file order. Other init kinds (git,
	// dockerfile, file, paths, tensorboard, refs) are not plxfs's job and are left out.
	Init []ArtifactsInit
}

// ArtifactsInit is one "init: - artifacts: {dirs: [...], files: [...]}, connection: NAME" entry.
// No dirs and no files means the whole connection.
type ArtifactsInit struct {
	// Connection is the entry's connection; "" means Polyaxon's artifacts store, which the
	// caller resolves.
	Connection string
	Dirs       []PathPair
	Files      []PathPair
	// Path is the entry's path: destination, "" for the default
	// (${POLYAXON_CONTEXT_ROOT:-/plx-context}/artifacts/CONNECTION).
	Path string
	Pos  Pos
}

// PathPair is one dirs/files entry: "a/b" (To "") or the pair ["a/b", "dest"]. Values are as
// written; callers map them with NameToPath/SafeJoin before touching the disk.
type PathPair struct {
	From, To string
}

var (
	initKeys        = []string{"artifacts", "paths", "git", "dockerfile", "file", "tensorboard", "lineageRef", "modelRef", "artifactRef", "connection", "path", "container"}
	artifactsKeys   = []string{"dirs", "files", "workers"}
	patchStrategies = []string{"replace", "isnull", "post_merge", "pre_merge"}
)

// ParsePolyaxonfile reads run.connections and run.init's artifacts entries from a Polyaxon
// component (top-level run:) or operation (component: {run: ...}). For an operation, runPatch's
// connections and init are combined with the component's according to patchStrategy, as Polyaxon
// does: post_merge (the default) appends them, pre_merge puts them first, replace uses the
// patch's list when it has one, isnull uses it only when the component has none. artifacts may
// be a mapping {dirs: [...], files: [...]} or a list of such mappings ([dirs: [...], files:
// [...]], as in Polyaxon's docs); each entry is a path or a [from, to] pair. Keys unknown to
// Polyaxon inside an init entry or its artifacts are errors with a "did you mean".
func ParsePolyaxonfile(file string, data []byte) (*Polyaxonfile, error) {
	root, err := parseYAMLDoc(file, data)
	if err != nil {
		return nil, err
	}
	w := &walker{file: file}
	if r := deref(root); r == nil || r.Kind != yaml.MappingNode {
		return nil, &Error{Pos: w.pos(root), Problem: "expected a mapping at the top, got " + describe(root),
			Fix: "pass a Polyaxon component or operation file"}
	}
	top := (&walker{file: file}).entries(root, at{}, "")
	get := func(es []entry, key string) *yaml.Node {
		for _, e := range es {
			if e.key == key {
				return e.val
			}
		}
		return nil
	}

	run, runField := get(top, "run"), "run"
	var patch *yaml.Node
	strategy := "post_merge"
	if run == nil {
		comp := get(top, "component")
		if cd := deref(comp); cd != nil && cd.Kind == yaml.MappingNode {
			run, runField = get(w.entries(cd, at{}, "component"), "run"), "component.run"
		}
		patch = get(top, "runPatch")
		if s := get(top, "patchStrategy"); s != nil {
			if v, ok := w.scalar(s, at{}, "patchStrategy"); ok {
				if !slices.Contains(patchStrategies, v) {
					w.fail(s, at{}, "patchStrategy", fmt.Sprintf("unknown strategy %q", v), suggestFix(v, patchStrategies))
				}
				strategy = v
			}
		}
	}
	if run == nil {
		problem := "no run: section"
		for _, ref := range []string{"hubRef", "pathRef", "urlRef", "dagRef"} {
			if get(top, ref) != nil {
				problem = fmt.Sprintf("the operation takes its component from %s, not inline", ref)
			}
		}
		return nil, &Error{Pos: w.pos(root), Problem: problem,
			Fix: "pass the component file (with run:), or an operation with component: {run: ...}"}
	}

	baseConns, baseInit := parseRun(w, run, runField)
	patchConns, patchInit := parseRun(w, patch, "runPatch")
	pf := &Polyaxonfile{
		File:        file,
		Connections: dedupe(mergeLists(strategy, baseConns, patchConns)),
		Init:        mergeLists(strategy, baseInit, patchInit),
	}
	if err := w.err(); err != nil {
		return nil, err
	}
	return pf, nil
}

func dedupe(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// mergeLists combines a component's list with its operation's runPatch list. A nil patch means
// the patch does not set the list.
func mergeLists[T any](strategy string, base, patch []T) []T {
	switch strategy {
	case "replace":
		if patch != nil {
			return patch
		}
		return base
	case "isnull":
		if len(base) == 0 {
			return patch
		}
		return base
	case "pre_merge":
		return append(slices.Clip(patch), base...)
	default: // post_merge
		return append(slices.Clip(base), patch...)
	}
}

// parseRun reads connections and init from a run (or runPatch) mapping; nil lists mean absent.
// Other keys (kind, container, environment...) are not plxfs's business and are ignored.
func parseRun(w *walker, run *yaml.Node, field string) (conns []string, inits []ArtifactsInit) {
	es, ok := w.mapping(run, at{}, field, "write "+field+" as a mapping")
	if !ok {
		return nil, nil
	}
	for _, e := range es {
		switch e.key {
		case "connections":
			f := field + ".connections"
			items, ok := w.sequence(e.val, at{}, f, "write connections as a list of names, e.g. connections: [gcs-dataset1]")
			if !ok {
				continue
			}
			conns = []string{}
			for i, it := range items {
				fi := fmt.Sprintf("%s[%d]", f, i)
				s, ok := w.scalar(it, at{}, fi)
				switch {
				case ok && s != "":
					conns = append(conns, s)
				case ok || isNull(it):
					w.fail(it, at{}, fi, "empty connection name", "remove the empty entry")
				}
			}
		case "init":
			f := field + ".init"
			items, ok := w.sequence(e.val, at{}, f, "write init as a list of entries, e.g. - artifacts: {dirs: [data]}")
			if !ok {
				continue
			}
			inits = []ArtifactsInit{}
			for i, it := range items {
				if ai, ok := parseInit(w, it, fmt.Sprintf("%s[%d]", f, i)); ok {
					inits = append(inits, ai)
				}
			}
		}
	}
	return conns, inits
}

// parseInit reads one init entry; ok is false when it is not an artifacts entry or has errors.
func parseInit(w *walker, n *yaml.Node, subject string) (ArtifactsInit, bool) {
	a := at{subject: subject}
	ai := ArtifactsInit{Pos: w.pos(n)}
	es, ok := w.mapping(n, a, "", "write each init entry as a mapping, e.g. - artifacts: {dirs: [data]}")
	if !ok {
		return ai, false
	}
	before := len(w.errs)
	var artifacts *yaml.Node
	isArtifacts := false
	for _, e := range es {
		switch e.key {
		case "artifacts":
			artifacts, isArtifacts = e.val, true
		case "connection":
			ai.Connection, _ = w.scalar(e.val, a, "connection")
		case "path":
			ai.Path, _ = w.scalar(e.val, a, "path")
		default:
			if !slices.Contains(initKeys, e.key) {
				w.unknownKey(e, a, "", initKeys)
			}
		}
	}
	if !isArtifacts {
		return ai, false
	}
	// artifacts: {dirs, files}, or a list of such mappings, or nothing (the whole connection).
	var parts []*yaml.Node
	if d := deref(artifacts); d != nil && d.Kind == yaml.SequenceNode {
		parts = d.Content
	} else if !isNull(artifacts) {
		parts = []*yaml.Node{artifacts}
	}
	for _, p := range parts {
		pes, ok := w.mapping(p, a, "artifacts", "write artifacts as {dirs: [...], files: [...]}")
		if !ok {
			continue
		}
		for _, e := range pes {
			switch e.key {
			case "dirs":
				ai.Dirs = append(ai.Dirs, parsePathPairs(w, e.val, a, "artifacts.dirs")...)
			case "files":
				ai.Files = append(ai.Files, parsePathPairs(w, e.val, a, "artifacts.files")...)
			case "workers":
				w.scalar(e.val, a, "artifacts.workers")
			default:
				w.unknownKey(e, a, "artifacts", artifactsKeys)
			}
		}
	}
	return ai, len(w.errs) == before
}

func parsePathPairs(w *walker, n *yaml.Node, a at, field string) []PathPair {
	items, _ := w.sequence(n, a, field, "write a list of paths or [from, to] pairs")
	var out []PathPair
	for i, it := range items {
		f := fmt.Sprintf("%s[%d]", field, i)
		const fix = `write a path ("data/train") or a pair (["data/train", "train"])`
		d := deref(it)
		switch {
		case isNull(it):
			w.fail(it, a, f, "empty entry", fix)
		case d.Kind == yaml.ScalarNode:
			if d.Value == "" {
				w.fail(it, a, f, "empty path", fix)
				continue
			}
			out = append(out, PathPair{From: d.Value})
		case d.Kind == yaml.SequenceNode && (len(d.Content) == 1 || len(d.Content) == 2):
			from, ok := w.scalar(d.Content[0], a, f+"[0]")
			if !ok || from == "" {
				w.fail(it, a, f, "empty source path", fix)
				continue
			}
			p := PathPair{From: from}
			if len(d.Content) == 2 {
				p.To, _ = w.scalar(d.Content[1], a, f+"[1]")
			}
			out = append(out, p)
		default:
			w.fail(it, a, f, "expected a path or a [from, to] pair, got "+describe(it), fix)
		}
	}
	return out
}
