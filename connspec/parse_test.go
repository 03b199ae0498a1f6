package connspec

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"
)

func intp(i int) *int { return &i }

func TestParseYAML_Valid(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []Connection
	}{
		{
			name: "connections list with every field",
			yaml: `connections:
- name: ds1
  kind: gcs
  description: training data
  tags: [a, b]
  schema:
    bucket: gs://my-bucket/data//train/
    project: my-project
  secret:
    name: gcs-secret
    mountPath: /etc/gcs
    items: [gc-secret.json]
    defaultMode: 0400
  configMap:
    name: gcs-key-path
  env:
  - name: GC_KEY_PATH
    value: /etc/gcs/gc-secret.json
  - name: FROM_SECRET
    valueFrom: {secretKeyRef: {name: s, key: k}}
  annotations: {team: ml}
`,
			want: []Connection{{
				Name: "ds1", Kind: "gcs", Description: "training data", Tags: []string{"a", "b"},
				Bucket: "my-bucket", Prefix: "data/train/",
				Schema:      map[string]string{"project": "my-project"},
				Secret:      &Ref{Name: "gcs-secret", MountPath: "/etc/gcs", Items: []string{"gc-secret.json"}, DefaultMode: intp(0o400)},
				ConfigMap:   &Ref{Name: "gcs-key-path"},
				Env:         []EnvVar{{Name: "GC_KEY_PATH", Value: "/etc/gcs/gc-secret.json"}},
				Annotations: map[string]string{"team": "ml"},
				Pos:         Pos{File: "c.yaml", Line: 2},
			}},
		},
		{
			name: "persistence list, env as a mapping, snake_case keys, gcs:// scheme",
			yaml: `persistence:
- name: ds2
  kind: gcs
  schema: {bucket: "gcs://b-2"}
  config_map: {name: cm, mount_path: /etc/cm, default_mode: "0440"}
  env: {GC_PROJECT: p1, B: 2}
`,
			want: []Connection{{
				Name: "ds2", Kind: "gcs", Bucket: "b-2",
				ConfigMap: &Ref{Name: "cm", MountPath: "/etc/cm", DefaultMode: intp(0o440)},
				Env:       []EnvVar{{Name: "GC_PROJECT", Value: "p1"}, {Name: "B", Value: "2"}},
				Pos:       Pos{File: "c.yaml", Line: 2},
			}},
		},
		{
			name: "mixed kinds are kept; non-gcs schema not checked",
			yaml: `connections:
- name: s3-data
  kind: s3
  schema: {bucket: "s3://whatever"}
- name: repo
  kind: git
  schema: {url: "https://github.com/x/y", flags: [--depth, "1"]}
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt}
`,
			want: []Connection{
				{Name: "s3-data", Kind: "s3", Schema: map[string]string{"bucket": "s3://whatever"}, Pos: Pos{File: "c.yaml", Line: 2}},
				{Name: "repo", Kind: "git", Schema: map[string]string{"url": "https://github.com/x/y"}, Pos: Pos{File: "c.yaml", Line: 5}},
				{Name: "ds", Kind: "gcs", Bucket: "bkt", Pos: Pos{File: "c.yaml", Line: 8}},
			},
		},
		{
			name: "agent config nested under agent:, other keys ignored",
			yaml: `deploymentChart: agent
gateway: {enabled: true}
agent:
  token: xyz
  connections:
  - name: ds
    kind: gcs
    schema: {bucket: gs://bkt/p}
`,
			want: []Connection{{Name: "ds", Kind: "gcs", Bucket: "bkt", Prefix: "p/", Pos: Pos{File: "c.yaml", Line: 6}}},
		},
		{
			name: "helm values: artifactsStore plus connections, merge keys",
			yaml: `defaults: &gcs
  kind: gcs
  secret: {name: gcs-secret, mountPath: /etc/gcs}
artifactsStore:
  name: store
  <<: *gcs
  schema: {bucket: gs://artifacts}
connections:
- name: ds
  <<: *gcs
  schema: {bucket: gs://data}
- name: store
  <<: *gcs
  schema: {bucket: gs://artifacts}
mountConnections: [ds]
`,
			want: []Connection{
				{Name: "ds", Kind: "gcs", Bucket: "data", Secret: &Ref{Name: "gcs-secret", MountPath: "/etc/gcs"}, Pos: Pos{File: "c.yaml", Line: 9}},
				{Name: "store", Kind: "gcs", Bucket: "artifacts", Secret: &Ref{Name: "gcs-secret", MountPath: "/etc/gcs"}, Pos: Pos{File: "c.yaml", Line: 12}},
			},
		},
		{
			name: "artifactsStore alone",
			yaml: `artifactsStore:
  name: store
  kind: gcs
  schema: {bucket: gs://artifacts/runs}
`,
			want: []Connection{{Name: "store", Kind: "gcs", Bucket: "artifacts", Prefix: "runs/", Pos: Pos{File: "c.yaml", Line: 2}}},
		},
		{
			name: "top level wins over nested; other mappings' duplicate keys are not ours",
			yaml: `agent:
  connections:
  - {name: nested, kind: gcs, schema: {bucket: gs://bkt}}
gateway: {port: 1, port: 2}
connections:
- {name: top, kind: gcs, schema: {bucket: gs://bkt}}
`,
			want: []Connection{{Name: "top", Kind: "gcs", Bucket: "bkt", Pos: Pos{File: "c.yaml", Line: 6}}},
		},
		{
			name: "empty connections list",
			yaml: "connections:\n",
			want: nil,
		},
		{
			name: "tags as a comma-separated string, null fields",
			yaml: `connections:
- name: ds
  kind: gcs
  tags: "a, b"
  description:
  secret: ~
  schema: {bucket: gs://bkt}
`,
			want: []Connection{{Name: "ds", Kind: "gcs", Tags: []string{"a", "b"}, Bucket: "bkt", Pos: Pos{File: "c.yaml", Line: 2}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat, err := ParseYAML("c.yaml", []byte(tc.yaml))
			if err != nil {
				t.Fatalf("ParseYAML: %v", err)
			}
			if cat.Source != "c.yaml" {
				t.Errorf("Source = %q", cat.Source)
			}
			if !reflect.DeepEqual(cat.Connections, tc.want) {
				t.Errorf("connections:\n got %+v\nwant %+v", cat.Connections, tc.want)
			}
		})
	}
}

// TestParseYAML_Errors checks each rule's message, exactly: file, line, subject, field, problem
// and fix.
func TestParseYAML_Errors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // every line of the error, in order
	}{
		{
			name: "typo in mountPath",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt}
  secret:
    name: s
    mounthPath: /etc/gcs
`,
			want: []string{`c.yaml:7: connection "ds": secret.mounthPath: unknown key; did you mean "mountPath"?`},
		},
		{
			name: "unknown connection key with and without suggestion",
			yaml: `connections:
- name: ds
  kind: gcs
  shema: {bucket: gs://bkt}
  colour: blue
`,
			want: []string{
				`c.yaml:4: connection "ds": shema: unknown key; did you mean "schema"?`,
				`c.yaml:5: connection "ds": colour: unknown key; expected one of: name, kind, description, tags, schema, secret, configMap, env, annotations, isAlias`,
				`c.yaml:2: connection "ds": schema.bucket: missing; add schema: {bucket: gs://BUCKET/PREFIX}`,
			},
		},
		{
			name: "unknown env key",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt}
  env:
  - {name: A, valeu: x}
`,
			want: []string{`c.yaml:6: connection "ds": env[0].valeu: unknown key; did you mean "value"?`},
		},
		{
			name: "missing name",
			yaml: `connections:
- kind: gcs
  schema: {bucket: gs://bkt}
`,
			want: []string{`c.yaml:2: connection #1: name: missing; give the connection a name (it becomes its directory under the mountpoint)`},
		},
		{
			name: "duplicate names",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://a-bucket}
- name: ds
  kind: gcs
  schema: {bucket: gs://b-bucket}
`,
			want: []string{`c.yaml:5: connection "ds": name: the same name as the connection at c.yaml:2; give each connection its own name (it becomes the directory name)`},
		},
		{
			name: "name with a slash",
			yaml: `connections:
- name: a/b
  kind: gcs
  schema: {bucket: gs://bkt}
`,
			want: []string{`c.yaml:2: connection "a/b": name: "a/b" cannot be a directory name (unsafe name: "/" in segment); use letters, digits, '-', '_' and '.', as Polyaxon names do`},
		},
		{
			name: "name dot-dot",
			yaml: `connections:
- name: ".."
  kind: gcs
  schema: {bucket: gs://bkt}
`,
			want: []string{`c.yaml:2: connection "..": name: ".." cannot be a directory name (unsafe name: ".." segment); use letters, digits, '-', '_' and '.', as Polyaxon names do`},
		},
		{
			name: "name with leading dash and colon",
			yaml: `connections:
- name: -x
  kind: gcs
  schema: {bucket: gs://bkt}
- name: "a:b"
  kind: gcs
  schema: {bucket: gs://bkt}
`,
			want: []string{
				`c.yaml:2: connection "-x": name: "-x" starts with '-', which reads as a command-line flag; use letters, digits, '-', '_' and '.', as Polyaxon names do`,
				`c.yaml:5: connection "a:b": name: "a:b" contains ':', which separates the connection from the path in NAME:PATH; use letters, digits, '-', '_' and '.', as Polyaxon names do`,
			},
		},
		{
			name: "name with a control character",
			yaml: "connections:\n- name: \"a\\tb\"\n  kind: gcs\n  schema: {bucket: gs://bkt}\n",
			want: []string{`c.yaml:2: connection "a\tb": name: "a\tb" contains a control character; use letters, digits, '-', '_' and '.', as Polyaxon names do`},
		},
		{
			name: "name too long",
			yaml: "connections:\n- name: " + strings.Repeat("n", 256) + "\n  kind: gcs\n  schema: {bucket: gs://bkt}\n",
			want: []string{`c.yaml:2: connection "` + strings.Repeat("n", 256) + `": name: "` + strings.Repeat("n", 256) + `" cannot be a directory name (unsafe name: segment is 256 bytes (at most 255)); use letters, digits, '-', '_' and '.', as Polyaxon names do`},
		},
		{
			name: "unknown kind",
			yaml: `connections:
- name: ds
  kind: gsc
  schema: {bucket: gs://bkt}
`,
			want: []string{`c.yaml:3: connection "ds": kind: unknown kind "gsc"; did you mean "gcs"?`},
		},
		{
			name: "missing kind",
			yaml: `connections:
- name: ds
  schema: {bucket: gs://bkt}
`,
			want: []string{`c.yaml:2: connection "ds": kind: missing; add kind: gcs`},
		},
		{
			name: "bad bucket URL",
			yaml: `connections:
- name: ds
  kind: gcs
  schema:
    bucket: s3://bkt
`,
			want: []string{`c.yaml:5: connection "ds": schema.bucket: "s3://bkt" is not a gs:// URL (expected gs://BUCKET or gs://BUCKET/PREFIX); write it as gs://BUCKET or gs://BUCKET/PREFIX`},
		},
		{
			name: "bad bucket name",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://My_Bucket}
`,
			want: []string{`c.yaml:4: connection "ds": schema.bucket: bucket name "My_Bucket" has uppercase letters; GCS bucket names are lowercase; write it as gs://BUCKET or gs://BUCKET/PREFIX`},
		},
		{
			name: "dot-dot in prefix",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt/a/../b}
`,
			want: []string{`c.yaml:4: connection "ds": schema.bucket: the prefix has a ".." segment; write the prefix without "." or ".."; write it as gs://BUCKET or gs://BUCKET/PREFIX`},
		},
		{
			name: "schema not a mapping",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: gs://bkt
`,
			want: []string{`c.yaml:4: connection "ds": schema: expected a mapping, got a scalar; write schema as a mapping, e.g. schema: {bucket: gs://BUCKET/PREFIX}`},
		},
		{
			name: "secret without name, relative mountPath, bad items and mode",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt}
  secret:
    mountPath: etc/gcs
    items: [../key.json]
    defaultMode: 999
`,
			want: []string{
				`c.yaml:6: connection "ds": secret.mountPath: "etc/gcs" is not an absolute path; write the path where the volume is mounted, starting with /`,
				`c.yaml:7: connection "ds": secret.items[0]: "../key.json" is not a file name (unsafe name: "/" in segment); list the secret's key names`,
				`c.yaml:8: connection "ds": secret.defaultMode: "999" is not a file mode; write an octal mode such as 0400`,
				`c.yaml:6: connection "ds": secret.name: missing; name the Kubernetes Secret`,
			},
		},
		{
			name: "duplicate key inside a connection",
			yaml: `connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt}
  configMap: {name: a}
  config_map: {name: b}
`,
			want: []string{`c.yaml:6: connection "ds": configMap: key given twice; keep one of them`},
		},
		{
			name: "connections not a list",
			yaml: "connections:\n  name: ds\n",
			want: []string{`c.yaml:2: connections: expected a list, got a mapping; write a list of connections, each starting with "- name:"`},
		},
		{
			name: "item not a mapping",
			yaml: "connections:\n- ds\n",
			want: []string{`c.yaml:2: connection #1: expected a mapping, got a scalar; write each connection as a mapping with name, kind and schema`},
		},
		{
			name: "no connections anywhere",
			yaml: "foo: 1\nbar: {baz: 2}\n",
			want: []string{`c.yaml: no connections found; add a top-level connections: list (or persistence:, or one under agent:), each item with name, kind and schema.bucket`},
		},
		{
			name: "Polyaxon v0 persistence mapping",
			yaml: "persistence:\n  data:\n    foo: {bucket: gs://x}\n",
			want: []string{`c.yaml: persistence: is a mapping (the Polyaxon v0 format), not a list of connections; add a top-level connections: list (or persistence:, or one under agent:), each item with name, kind and schema.bucket`},
		},
		{
			name: "connections under two nested keys",
			yaml: "agent:\n  connections: []\npolyaxon:\n  connections: []\n",
			want: []string{`c.yaml:1: connections: connections found in more than one place: agent: (line 2), polyaxon: (line 4); pass a file with a single connections: list`},
		},
		{
			name: "YAML syntax error",
			yaml: "connections:\n- name: ds\n  kind: [gcs\n",
			want: []string{`c.yaml:3: invalid YAML: did not find expected ',' or ']'; fix the YAML syntax`},
		},
		{
			name: "empty file",
			yaml: "",
			want: []string{`c.yaml: the file is empty; add a connections: list`},
		},
		{
			name: "two documents",
			yaml: "connections: []\n---\nconnections: []\n",
			want: []string{`c.yaml:2: a second YAML document starts here; keep one document per file (remove the extra ---)`},
		},
		{
			name: "top level is a list",
			yaml: "- name: ds\n",
			want: []string{`c.yaml:1: expected a mapping at the top, got a list; start the file with connections: followed by a list`},
		},
		{
			name: "connections key twice",
			yaml: "connections: []\nother: 1\nother: 2\nconnections: []\n",
			want: []string{`c.yaml:4: connections: key given twice; keep one of them`},
		},
		{
			name: "error inside artifactsStore",
			yaml: "artifactsStore:\n  name: store\n  kind: gcs\n",
			want: []string{`c.yaml:2: connection "store": schema.bucket: missing; add schema: {bucket: gs://BUCKET/PREFIX}`},
		},
		{
			name: "empty list item and name that is a list",
			yaml: "connections:\n-\n- name: [a]\n  kind: gcs\n  schema: {bucket: gs://bkt}\n",
			want: []string{
				`c.yaml:2: connection #1: empty list item; remove the "-" or fill in the connection`,
				`c.yaml:3: connection #2: name: expected a string, got a list; write a single value`,
			},
		},
		{
			name: "gcs schema value that is not a string",
			yaml: `connections:
- name: ds
  kind: gcs
  schema:
    bucket: gs://bkt
    GC_KEYFILE_DICT: {type: service_account}
`,
			want: []string{`c.yaml:6: connection "ds": schema.GC_KEYFILE_DICT: expected a string, got a mapping; write a single value`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cat, err := ParseYAML("c.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseYAML succeeded with %+v; want errors %q", cat, tc.want)
			}
			if cat != nil {
				t.Errorf("catalog returned with an error: %+v", cat)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("errors:\n got %q\nwant %q", got, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("error %v is not a *Error", err)
			}
		})
	}
}

// TestErrorsNeverQuoteSecrets puts secret-looking values everywhere a value can go wrong and
// checks that no error repeats them.
func TestErrorsNeverQuoteSecrets(t *testing.T) {
	const secret = "TOPSECRET"
	inputs := []string{
		`connections:
- name: ds
  kind: gcs
  schema: {bucket: gs://bkt, private_key: [TOPSECRET]}
  env:
  - {name: GC_KEYFILE_DICT, value: [TOPSECRET], valeu: TOPSECRET}
  - {value: TOPSECRET}
  - TOPSECRET
`,
		`connections:
- name: ds
  kind: gcs
  env: {GC_KEYFILE_DICT: {a: TOPSECRET}}
  schema:
    bucket: gs://bkt
    key: {TOPSECRET: 1}
`,
		"connections:\n- name: ds\n  env: [{name: A, value: \"TOPSECRET\n",
	}
	for i, in := range inputs {
		_, err := ParseYAML("c.yaml", []byte(in))
		if err == nil {
			t.Fatalf("input %d: no error", i)
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("input %d: error quotes a secret value:\n%v", i, err)
		}
	}
	_, err := ParseCatalogJSON(catalogSource, []byte(`{"connections":[{"name":"ds","kind":"gcs","env":[{"name":"K","value":["TOPSECRET"]}],"schema":{"bucket":"gs://b"}}]} TOPSECRET`))
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("catalog: want an error without the secret, got %v", err)
	}
}

func TestParseCatalogJSON(t *testing.T) {
	t.Run("valid", func(t *testing.T) {
		data := `{"connections": [
		{"name": "ds", "kind": "gcs", "schema": {"bucket": "gs:\/\/bkt\/data"}, "secret": {"name": "s", "mountPath": "/etc/gcs", "defaultMode": 256},
		 "configMap": null, "env": [{"name": "GC_KEY_PATH", "value": "/etc/gcs/k.json"}], "tags": null, "description": null},
		{"name": "s3", "kind": "s3", "schema": {"bucket": "s3://x"}}]}`
		cat, err := ParseCatalogJSON(catalogSource, []byte(data))
		if err != nil {
			t.Fatal(err)
		}
		want := []Connection{
			{Name: "ds", Kind: "gcs", Bucket: "bkt", Prefix: "data/",
				Secret: &Ref{Name: "s", MountPath: "/etc/gcs", DefaultMode: intp(256)},
				Env:    []EnvVar{{Name: "GC_KEY_PATH", Value: "/etc/gcs/k.json"}},
				Pos:    Pos{File: catalogSource}},
			{Name: "s3", Kind: "s3", Schema: map[string]string{"bucket": "s3://x"}, Pos: Pos{File: catalogSource}},
		}
		if !reflect.DeepEqual(cat.Connections, want) {
			t.Errorf("got %+v\nwant %+v", cat.Connections, want)
		}
		if cat.Source != catalogSource {
			t.Errorf("Source = %q", cat.Source)
		}
	})
	errTests := []struct {
		name, json, want string
	}{
		{"bad character", `{"connections": [{"name": "a", "value": "x"X}]}`, `$POLYAXON_CONNECTIONS_CATALOG: invalid JSON at byte 44: invalid character after object key:value pair; it must be a JSON object such as {"connections": [...]}`},
		{"syntax", `{"connections": [`, `$POLYAXON_CONNECTIONS_CATALOG: invalid JSON at byte 17: unexpected end of JSON input; it must be a JSON object such as {"connections": [...]}`},
		{"trailing", `{"connections": []} x`, `$POLYAXON_CONNECTIONS_CATALOG: invalid JSON at byte 21: invalid character after top-level value; it must be a JSON object such as {"connections": [...]}`},
		{"not an object", `[1]`, `$POLYAXON_CONNECTIONS_CATALOG: expected a mapping at the top, got a list; start the file with connections: followed by a list`},
		{"unnamed unknown key", `{"connections": [{"kind": "gcs", "schema": {"bucket": "gs://bkt"}, "secrets": {}}]}`,
			"$POLYAXON_CONNECTIONS_CATALOG: connection #1: name: missing; give the connection a name (it becomes its directory under the mountpoint)\n" +
				`$POLYAXON_CONNECTIONS_CATALOG: connection #1: secrets: unknown key; did you mean "secret"?`},
		{"tab-indented JSON is fine, errors have no line", "{\n\t\"connections\": [\n\t\t{\"name\": \"ds\", \"kind\": \"gcs\", \"schema\": {\"bucket\": \"gs://UP\"}}\n\t]\n}",
			`$POLYAXON_CONNECTIONS_CATALOG: connection "ds": schema.bucket: bucket name "UP" has uppercase letters; GCS bucket names are lowercase; write it as gs://BUCKET or gs://BUCKET/PREFIX`},
		{"nested is not looked at", `{"agent": {"connections": []}}`, `$POLYAXON_CONNECTIONS_CATALOG: no connections found; add a top-level connections: list (or persistence:, or one under agent:), each item with name, kind and schema.bucket`},
	}
	for _, tc := range errTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalogJSON(catalogSource, []byte(tc.json))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error:\n got %v\nwant %s", err, tc.want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	files := map[string]string{
		"/conf/a.yaml": "connections:\n- {name: from-a, kind: gcs, schema: {bucket: gs://bkt}}\n",
		"/conf/b.yaml": "connections:\n- {name: from-b, kind: gcs, schema: {bucket: gs://bkt}}\n",
	}
	readFile := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	env := func(kv map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := kv[k]; return v, ok }
	}
	catalog := `{"connections": [{"name": "from-env", "kind": "gcs", "schema": {"bucket": "gs://bkt"}}]}`
	tests := []struct {
		name     string
		opts     LoadOptions
		want     string // first connection's name
		wantErr  string
		wantFrom string
	}{
		{name: "config file wins", opts: LoadOptions{ConfigFile: "/conf/a.yaml", LookupEnv: env(map[string]string{ConfigEnv: "/conf/b.yaml", CatalogEnv: catalog})}, want: "from-a", wantFrom: "/conf/a.yaml"},
		{name: "PLXFS_CONFIG next", opts: LoadOptions{LookupEnv: env(map[string]string{ConfigEnv: "/conf/b.yaml", CatalogEnv: catalog})}, want: "from-b", wantFrom: "/conf/b.yaml"},
		{name: "catalog last", opts: LoadOptions{LookupEnv: env(map[string]string{ConfigEnv: "", CatalogEnv: catalog})}, want: "from-env", wantFrom: catalogSource},
		{name: "nothing", opts: LoadOptions{LookupEnv: env(map[string]string{CatalogEnv: "  "})},
			wantErr: "no connections given: pass --config FILE (or set PLXFS_CONFIG=FILE) naming a YAML file with a connections: list, or run inside a Polyaxon job, which sets POLYAXON_CONNECTIONS_CATALOG"},
		{name: "missing file", opts: LoadOptions{ConfigFile: "/conf/nope.yaml", LookupEnv: env(nil)},
			wantErr: "--config /conf/nope.yaml: cannot read the connections file: open /conf/nope.yaml: file does not exist; check the path and its permissions"},
		{name: "missing file from env", opts: LoadOptions{LookupEnv: env(map[string]string{ConfigEnv: "/conf/nope.yaml"})},
			wantErr: "$PLXFS_CONFIG /conf/nope.yaml: cannot read the connections file: open /conf/nope.yaml: file does not exist; check the path and its permissions"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.ReadFile = readFile
			cat, err := Load(tc.opts)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error:\n got %v\nwant %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cat.Source != tc.wantFrom || len(cat.Connections) != 1 || cat.Connections[0].Name != tc.want {
				t.Errorf("got source %q connections %+v; want %q from %q", cat.Source, cat.Connections, tc.want, tc.wantFrom)
			}
		})
	}
	t.Run("missing file wraps fs.ErrNotExist", func(t *testing.T) {
		_, err := Load(LoadOptions{ConfigFile: "/x", ReadFile: readFile, LookupEnv: env(nil)})
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("error %v does not wrap fs.ErrNotExist", err)
		}
	})
}

func TestSuggest(t *testing.T) {
	tests := []struct{ word, want string }{
		{"mounthPath", "mountPath"},
		{"mountpath", "mountPath"},
		{"mount-path", "mountPath"},
		{"configmap", "configMap"},
		{"ConfigMaps", "configMap"},
		{"nmae", "name"},
		{"zzzzzz", ""},
		{"x", ""},
	}
	for _, tc := range tests {
		if got := closest(tc.word, append(connectionKeys, refKeys...)); got != tc.want {
			t.Errorf("closest(%q) = %q, want %q", tc.word, got, tc.want)
		}
	}
}

func TestErrorIsOneLine(t *testing.T) {
	_, err := ParseYAML("c.yaml", []byte("connections:\n- name: ds\n  kind: gcs\n  schema: {bucket: gs://bkt}\n  \"bad\\nkey\": 1\n"))
	want := `c.yaml:5: connection "ds": bad\nkey: unknown key; expected one of: name, kind, description, tags, schema, secret, configMap, env, annotations, isAlias`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
}
