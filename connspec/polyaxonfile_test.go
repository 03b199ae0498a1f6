package connspec

import (
	"reflect"
	"strings"
	"testing"
)

func TestParsePolyaxonfile_Valid(t *testing.T) {
	tests := []struct {
		name  string
		yaml  string
		conns []string
		init  []ArtifactsInit
	}{
		{
			name: "component with connections and artifacts init, mapping form",
			yaml: `version: 1.1
kind: component
name: train
run:
  kind: job
  connections: [gcs-dataset1, s3-dataset1]
  init:
  - git: {url: "https://github.com/x/y"}
  - artifacts: {dirs: [data/train, [data/val, val]], files: ["a/b.csv", ["c.txt", "x/c.txt"]]}
    connection: gcs-dataset1
    path: /plx-context/data
  - artifacts: {}
    connection: other
  container:
    image: python
`,
			conns: []string{"gcs-dataset1", "s3-dataset1"},
			init: []ArtifactsInit{
				{Connection: "gcs-dataset1", Path: "/plx-context/data",
					Dirs:  []PathPair{{From: "data/train"}, {From: "data/val", To: "val"}},
					Files: []PathPair{{From: "a/b.csv"}, {From: "c.txt", To: "x/c.txt"}},
					Pos:   Pos{File: "p.yaml", Line: 9}},
				{Connection: "other", Pos: Pos{File: "p.yaml", Line: 12}},
			},
		},
		{
			name: "seed doc list form, artifacts with no value",
			yaml: `run:
  kind: job
  init:
   - artifacts: [dirs: [d1, d2], files: [f1]]
     connection: "gcs-dataset1"
   - artifacts:
     connection: whole
`,
			init: []ArtifactsInit{
				{Connection: "gcs-dataset1", Dirs: []PathPair{{From: "d1"}, {From: "d2"}}, Files: []PathPair{{From: "f1"}}, Pos: Pos{File: "p.yaml", Line: 4}},
				{Connection: "whole", Pos: Pos{File: "p.yaml", Line: 6}},
			},
		},
		{
			name: "operation with inline component and runPatch (post_merge default)",
			yaml: `version: 1.1
kind: operation
runPatch:
  connections: [extra, a]
  init:
  - artifacts: {files: [p.txt]}
    connection: extra
component:
  run:
    kind: job
    connections: [a]
    init:
    - artifacts: {dirs: [base]}
      connection: a
`,
			conns: []string{"a", "extra"},
			init: []ArtifactsInit{
				{Connection: "a", Dirs: []PathPair{{From: "base"}}, Pos: Pos{File: "p.yaml", Line: 13}},
				{Connection: "extra", Files: []PathPair{{From: "p.txt"}}, Pos: Pos{File: "p.yaml", Line: 6}},
			},
		},
		{
			name: "runPatch replace",
			yaml: `patchStrategy: replace
runPatch: {connections: [b]}
component: {run: {connections: [a], init: [{artifacts: {dirs: [x]}, connection: a}]}}
`,
			conns: []string{"b"},
			init:  []ArtifactsInit{{Connection: "a", Dirs: []PathPair{{From: "x"}}, Pos: Pos{File: "p.yaml", Line: 3}}},
		},
		{
			name:  "runPatch pre_merge",
			yaml:  "patchStrategy: pre_merge\nrunPatch: {connections: [b]}\ncomponent: {run: {connections: [a]}}\n",
			conns: []string{"b", "a"},
		},
		{
			name:  "runPatch isnull",
			yaml:  "patchStrategy: isnull\nrunPatch: {connections: [b]}\ncomponent: {run: {connections: [a]}}\n",
			conns: []string{"a"},
		},
		{
			name:  "runPatch isnull with empty base",
			yaml:  "patchStrategy: isnull\nrunPatch: {connections: [b]}\ncomponent: {run: {kind: job}}\n",
			conns: []string{"b"},
		},
		{
			name: "no connections, no init",
			yaml: "run: {kind: job, container: {image: x}}\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pf, err := ParsePolyaxonfile("p.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if pf.File != "p.yaml" {
				t.Errorf("File = %q", pf.File)
			}
			if !reflect.DeepEqual(pf.Connections, tc.conns) {
				t.Errorf("Connections = %q, want %q", pf.Connections, tc.conns)
			}
			if len(pf.Init) != 0 || len(tc.init) != 0 {
				if !reflect.DeepEqual(pf.Init, tc.init) {
					t.Errorf("Init:\n got %+v\nwant %+v", pf.Init, tc.init)
				}
			}
		})
	}
}

func TestParsePolyaxonfile_Errors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{
			name: "typo in init entry and artifacts",
			yaml: `run:
  init:
  - artifacts: {dirs: [a], fils: [b]}
    conection: ds
`,
			want: []string{
				`p.yaml:4: run.init[0]: conection: unknown key; did you mean "connection"?`,
				`p.yaml:3: run.init[0]: artifacts.fils: unknown key; did you mean "files"?`,
			},
		},
		{
			name: "bad entries",
			yaml: `run:
  init:
  - artifacts:
      dirs:
      - ""
      - [a, b, c]
      - {x: y}
      - ~
      files: notalist
    connection: [x]
`,
			want: []string{
				`p.yaml:10: run.init[0]: connection: expected a string, got a list; write a single value`,
				`p.yaml:5: run.init[0]: artifacts.dirs[0]: empty path; write a path ("data/train") or a pair (["data/train", "train"])`,
				`p.yaml:6: run.init[0]: artifacts.dirs[1]: expected a path or a [from, to] pair, got a list; write a path ("data/train") or a pair (["data/train", "train"])`,
				`p.yaml:7: run.init[0]: artifacts.dirs[2]: expected a path or a [from, to] pair, got a mapping; write a path ("data/train") or a pair (["data/train", "train"])`,
				`p.yaml:8: run.init[0]: artifacts.dirs[3]: empty entry; write a path ("data/train") or a pair (["data/train", "train"])`,
				`p.yaml:9: run.init[0]: artifacts.files: expected a list, got a scalar; write a list of paths or [from, to] pairs`,
			},
		},
		{
			name: "connections not a list",
			yaml: "run:\n  connections: gcs-dataset1\n",
			want: []string{`p.yaml:2: run.connections: expected a list, got a scalar; write connections as a list of names, e.g. connections: [gcs-dataset1]`},
		},
		{
			name: "empty connection name",
			yaml: "run:\n  connections:\n  - a\n  -\n  - \"\"\n",
			want: []string{
				`p.yaml:4: run.connections[1]: empty connection name; remove the empty entry`,
				`p.yaml:5: run.connections[2]: empty connection name; remove the empty entry`,
			},
		},
		{
			name: "operation by reference",
			yaml: "kind: operation\nhubRef: tensorboard\n",
			want: []string{`p.yaml:1: the operation takes its component from hubRef, not inline; pass the component file (with run:), or an operation with component: {run: ...}`},
		},
		{
			name: "no run",
			yaml: "kind: component\n",
			want: []string{`p.yaml:1: no run: section; pass the component file (with run:), or an operation with component: {run: ...}`},
		},
		{
			name: "unknown patch strategy",
			yaml: "patchStrategy: post-merge\ncomponent: {run: {}}\n",
			want: []string{`p.yaml:1: patchStrategy: unknown strategy "post-merge"; did you mean "post_merge"?`},
		},
		{
			name: "init item not a mapping",
			yaml: "run:\n  init: [artifacts]\n",
			want: []string{`p.yaml:2: run.init[0]: expected a mapping, got a scalar; write each init entry as a mapping, e.g. - artifacts: {dirs: [data]}`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pf, err := ParsePolyaxonfile("p.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error; got %+v", pf)
			}
			if got := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
