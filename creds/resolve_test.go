package creds

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/plxfs/plxfs/connspec"
)

func file(b []byte) *fstest.MapFile { return &fstest.MapFile{Data: b, Mode: 0o600} }
func text(s string) *fstest.MapFile { return file([]byte(s)) }

// conn builds a gcs connection as connspec would hand it over.
func conn(mod func(*connspec.Connection)) connspec.Connection {
	c := connspec.Connection{
		Name: "ds1", Kind: "gcs", Bucket: "gcs-datasets",
		Pos: connspec.Pos{File: "conns.yaml", Line: 7},
	}
	if mod != nil {
		mod(&c)
	}
	return c
}

func withSecret(mountPath string) func(*connspec.Connection) {
	return func(c *connspec.Connection) { c.Secret = &connspec.Ref{Name: "gcs-secret", MountPath: mountPath} }
}

// permissionDenied makes Stat and ReadFile fail with EACCES on one path.
func permissionDenied(p string) func(*Env) {
	return func(e *Env) {
		stat, read := e.Stat, e.ReadFile
		e.Stat = func(n string) (fs.FileInfo, error) {
			if n == p {
				return nil, &fs.PathError{Op: "stat", Path: n, Err: fs.ErrPermission}
			}
			return stat(n)
		}
		e.ReadFile = func(n string) ([]byte, error) {
			if n == p {
				return nil, &fs.PathError{Op: "open", Path: n, Err: fs.ErrPermission}
			}
			return read(n)
		}
	}
}

// unreadable lets Stat succeed but makes ReadFile fail with EACCES on one path.
func unreadable(p string) func(*Env) {
	return func(e *Env) {
		read := e.ReadFile
		e.ReadFile = func(n string) ([]byte, error) {
			if n == p {
				return nil, &fs.PathError{Op: "open", Path: n, Err: fs.ErrPermission}
			}
			return read(n)
		}
	}
}

type resolveCase struct {
	name  string
	conn  connspec.Connection
	vars  map[string]string
	files fstest.MapFS
	opts  Options
	tweak func(*Env)

	// On success:
	source, typ, project string
	scopes               []string // nil means DefaultScopes
	// On failure: every string must appear in the error, which must be a *Error.
	errHas []string
}

func TestResolveSources(t *testing.T) {
	sa, user, ext := saKey(nil), userKey(nil), extKey(nil)
	// escapedSA is a key pasted through a shell: private_key has `\n` instead of newlines.
	escapedSA := saKey(map[string]any{"private_key": strings.ReplaceAll(testPEM(), "\n", `\n`)})
	other := saKey(map[string]any{"project_id": "other-project"})

	cases := []resolveCase{
		{
			name:   "emulator looks for nothing, even with a broken key around",
			vars:   map[string]string{"GC_KEY_PATH": "/missing.json"},
			opts:   Options{Emulator: true, Anonymous: true},
			source: "none (emulator)", typ: "emulator",
		},
		{
			name:   "anonymous looks for nothing",
			conn:   conn(withSecret("/etc/gcs")),
			vars:   map[string]string{"GC_KEYFILE_DICT": "not json"},
			opts:   Options{Anonymous: true},
			source: "anonymous", typ: "anonymous",
		},
		{
			name:   "1: secret mountPath that is a file is the key",
			conn:   conn(withSecret("/plx-context/.gc/gc-secret.json")),
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": file(sa)},
			source: "secret gcs-secret mounted at /plx-context/.gc/gc-secret.json",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "1: secret directory with gc-secret.json",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/gc-secret.json": file(sa)},
			source: "secret gcs-secret mounted at /etc/gcs (gc-secret.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "1: secret directory with a GC_KEY_PATH item (trailing newline) naming the key file",
			conn: conn(withSecret("/etc/gcs")),
			files: fstest.MapFS{
				"etc/gcs/GC_KEY_PATH":    text("/keys/k.json\n"),
				"keys/k.json":            file(sa),
				"etc/gcs/gc-secret.json": file(other),
			},
			source: "secret gcs-secret mounted at /etc/gcs (GC_KEY_PATH=/keys/k.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "1: item named in lower case",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/google_application_credentials": text("/keys/k.json"), "keys/k.json": file(sa)},
			source: "secret gcs-secret mounted at /etc/gcs (google_application_credentials=/keys/k.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "1: item named in lower case without underscores",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/gckeypath": text("/keys/k.json"), "keys/k.json": file(sa)},
			source: "secret gcs-secret mounted at /etc/gcs (gckeypath=/keys/k.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "1: GC_KEYFILE_DICT item holds the key JSON",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/GC_KEYFILE_DICT": file(user), "etc/gcs/gc-secret.json": file(other)},
			source: "secret gcs-secret mounted at /etc/gcs (GC_KEYFILE_DICT)",
			typ:    "authorized_user",
		},
		{
			name: "1: a key path item wins over a key JSON item",
			conn: conn(withSecret("/etc/gcs")),
			files: fstest.MapFS{
				"etc/gcs/GOOGLE_KEYFILE_DICT": file(user),
				"etc/gcs/GOOGLE_KEY_PATH":     text("/keys/k.json"),
				"keys/k.json":                 file(sa),
			},
			source: "secret gcs-secret mounted at /etc/gcs (GOOGLE_KEY_PATH=/keys/k.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "1: empty items are skipped",
			conn: conn(withSecret("/etc/gcs")),
			files: fstest.MapFS{
				"etc/gcs/GC_KEY_PATH":     text("\n"),
				"etc/gcs/GC_KEYFILE_DICT": text("  "),
				"etc/gcs/gc-secret.json":  file(sa),
			},
			source: "secret gcs-secret mounted at /etc/gcs (gc-secret.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "1: a missing secret mount falls through to the configMap mount",
			conn: conn(func(c *connspec.Connection) {
				c.Secret = &connspec.Ref{Name: "gcs-secret", MountPath: "/etc/missing"}
				c.ConfigMap = &connspec.Ref{Name: "gcs-key-path", MountPath: "/etc/cm"}
			}),
			files:  fstest.MapFS{"etc/cm/GC_KEY_PATH": text("/keys/k.json"), "keys/k.json": file(sa)},
			source: "configMap gcs-key-path mounted at /etc/cm (GC_KEY_PATH=/keys/k.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "1: an empty secret directory falls through to the configMap mount",
			conn: conn(func(c *connspec.Connection) {
				c.Secret = &connspec.Ref{Name: "gcs-secret", MountPath: "/etc/gcs"}
				c.ConfigMap = &connspec.Ref{MountPath: "/etc/cm"}
			}),
			files: fstest.MapFS{
				"etc/gcs/unrelated":     text("x"),
				"etc/cm/gc-secret.json": file(sa),
			},
			source: "configMap mounted at /etc/cm (gc-secret.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "1: the mount wins over the connection's env and the process env",
			conn: conn(func(c *connspec.Connection) {
				withSecret("/etc/gcs")(c)
				c.Env = []connspec.EnvVar{{Name: "GC_KEY_PATH", Value: "/keys/other.json"}}
			}),
			vars:   map[string]string{"GC_KEY_PATH": "/keys/other.json"},
			files:  fstest.MapFS{"etc/gcs/gc-secret.json": file(sa), "keys/other.json": file(other)},
			source: "secret gcs-secret mounted at /etc/gcs (gc-secret.json)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "2: connection schema key path",
			conn: conn(func(c *connspec.Connection) {
				c.Schema = map[string]string{"GC_KEY_PATH": "/keys/k.json"}
			}),
			vars:   map[string]string{"GC_KEY_PATH": "/keys/other.json"},
			files:  fstest.MapFS{"keys/k.json": file(sa), "keys/other.json": file(other)},
			source: "connection schema GC_KEY_PATH=/keys/k.json",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "2: connection env key JSON, with escaped newlines in private_key",
			conn: conn(func(c *connspec.Connection) {
				c.Env = []connspec.EnvVar{{Name: "GC_KEYFILE_DICT", Value: string(escapedSA)}}
			}),
			vars:   map[string]string{"GC_KEY_PATH": "/keys/other.json"},
			files:  fstest.MapFS{"keys/other.json": file(other)},
			source: "connection env GC_KEYFILE_DICT",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name: "2: schema wins over env; the last duplicate env entry wins",
			conn: conn(func(c *connspec.Connection) {
				c.Schema = map[string]string{"gc_keyfile_dict": string(user)}
				c.Env = []connspec.EnvVar{{Name: "GC_KEY_PATH", Value: "/keys/k.json"}}
			}),
			files:  fstest.MapFS{"keys/k.json": file(sa)},
			source: "connection schema gc_keyfile_dict",
			typ:    "authorized_user",
		},
		{
			name: "2: the last duplicate env entry wins",
			conn: conn(func(c *connspec.Connection) {
				c.Env = []connspec.EnvVar{
					{Name: "GC_KEY_PATH", Value: "/keys/missing.json"},
					{Name: "GC_KEY_PATH", Value: "/keys/k.json"},
				}
			}),
			files:  fstest.MapFS{"keys/k.json": file(sa)},
			source: "connection env GC_KEY_PATH=/keys/k.json",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: GC_KEY_PATH in the process env",
			vars:   map[string]string{"GC_KEY_PATH": "/etc/gcs/gc-secret.json"},
			files:  fstest.MapFS{"etc/gcs/gc-secret.json": file(sa)},
			source: "GC_KEY_PATH=/etc/gcs/gc-secret.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: GOOGLE_KEY_PATH",
			vars:   map[string]string{"GOOGLE_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "GOOGLE_KEY_PATH=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: GOOGLE_APPLICATION_CREDENTIALS",
			vars:   map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/k.json"},
			files:  fstest.MapFS{"k.json": file(ext)},
			source: "GOOGLE_APPLICATION_CREDENTIALS=/k.json (process env)",
			typ:    "external_account",
		},
		{
			name:   "3: lower-case variant",
			vars:   map[string]string{"gc_key_path": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "gc_key_path=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: lower-case variant without underscores",
			vars:   map[string]string{"googleapplicationcredentials": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "googleapplicationcredentials=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: POLYAXON_ prefix",
			vars:   map[string]string{"POLYAXON_GC_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "POLYAXON_GC_KEY_PATH=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: POLYAXON_ prefix on the underscore-less variant",
			vars:   map[string]string{"POLYAXON_gckeypath": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "POLYAXON_gckeypath=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: upper case without underscores is not a Polyaxon spelling",
			vars:   map[string]string{"GCKEYPATH": "/k.json", "POLYAXON_GCKEYPATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "application default credentials", typ: "adc",
		},
		{
			name:   "3: GC_KEY_PATH wins over GOOGLE_APPLICATION_CREDENTIALS",
			vars:   map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/other.json", "GC_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa), "other.json": file(other)},
			source: "GC_KEY_PATH=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: the plain name wins over the POLYAXON_ one",
			vars:   map[string]string{"POLYAXON_GC_KEY_PATH": "/other.json", "GC_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa), "other.json": file(other)},
			source: "GC_KEY_PATH=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: GC_KEYFILE_DICT",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(escapedSA)},
			source: "GC_KEYFILE_DICT (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: GOOGLE_KEYFILE_DICT with surrounding whitespace",
			vars:   map[string]string{"GOOGLE_KEYFILE_DICT": "\n  " + string(user) + "\n\n"},
			source: "GOOGLE_KEYFILE_DICT (process env)",
			typ:    "authorized_user",
		},
		{
			name:   "3: POLYAXON_GOOGLE_KEYFILE_DICT",
			vars:   map[string]string{"POLYAXON_GOOGLE_KEYFILE_DICT": string(sa)},
			source: "POLYAXON_GOOGLE_KEYFILE_DICT (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: a key path wins over key JSON",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(user), "GOOGLE_APPLICATION_CREDENTIALS": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			source: "GOOGLE_APPLICATION_CREDENTIALS=/k.json (process env)",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "3: an empty or blank key path is skipped",
			vars:   map[string]string{"GC_KEY_PATH": "", "GOOGLE_KEY_PATH": "  ", "GC_KEYFILE_DICT": string(user)},
			source: "GC_KEYFILE_DICT (process env)",
			typ:    "authorized_user",
		},
		{
			name:   "4: the default path under /plx-context",
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": file(sa)},
			source: "default /plx-context/.gc/gc-secret.json",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "4: POLYAXON_CONTEXT_ROOT moves the default path",
			vars:   map[string]string{"POLYAXON_CONTEXT_ROOT": "/ctx"},
			files:  fstest.MapFS{"ctx/.gc/gc-secret.json": file(sa), "plx-context/.gc/gc-secret.json": text("garbage")},
			source: "default /ctx/.gc/gc-secret.json",
			typ:    "service_account", project: "proj-from-key",
		},
		{
			name:   "4: the process env wins over the default path",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(user)},
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": file(sa)},
			source: "GC_KEYFILE_DICT (process env)",
			typ:    "authorized_user",
		},
		{
			name:   "5: nothing found: application default credentials",
			conn:   conn(withSecret("/etc/not-mounted")),
			source: "application default credentials", typ: "adc",
		},
		{
			name:   "settings: scopes and project for ADC from the process env",
			vars:   map[string]string{"GC_SCOPES": " https://a/s1 , https://a/s2,", "POLYAXON_GC_PROJECT_ID": "p1"},
			source: "application default credentials", typ: "adc",
			scopes: []string{"https://a/s1", "https://a/s2"}, project: "p1",
		},
		{
			name:   "settings: scopes as a JSON array",
			vars:   map[string]string{"GOOGLE_SCOPES": `["https://a/s1"]`},
			source: "application default credentials", typ: "adc",
			scopes: []string{"https://a/s1"},
		},
		{
			name:   "settings: a configured project overrides the key's project_id",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(sa), "google_project": "p2"},
			source: "GC_KEYFILE_DICT (process env)", typ: "service_account", project: "p2",
		},
		{
			name: "settings: mounted items win over the connection, which wins over the process env",
			conn: conn(func(c *connspec.Connection) {
				withSecret("/etc/gcs")(c)
				c.Schema = map[string]string{"GC_PROJECT": "from-schema"}
				c.Env = []connspec.EnvVar{{Name: "GC_SCOPES", Value: "https://a/env"}}
			}),
			vars: map[string]string{"GC_PROJECT": "from-process", "GC_SCOPES": "https://a/process"},
			files: fstest.MapFS{
				"etc/gcs/gc-secret.json": file(sa),
				"etc/gcs/gc_scopes":      text("https://a/mounted\n"),
			},
			source: "secret gcs-secret mounted at /etc/gcs (gc-secret.json)", typ: "service_account",
			scopes: []string{"https://a/mounted"}, project: "from-schema",
		},
		{
			name:   "EnvFrom resolves relative key paths from its root",
			vars:   map[string]string{"GC_KEY_PATH": "keys/k.json"},
			files:  fstest.MapFS{"keys/k.json": file(sa)},
			source: "GC_KEY_PATH=keys/k.json (process env)", typ: "service_account", project: "proj-from-key",
		},
	}
	runResolveCases(t, cases)
}

func TestResolveFailures(t *testing.T) {
	sa := saKey(nil)
	cases := []resolveCase{
		{
			name:   "missing key file",
			vars:   map[string]string{"GC_KEY_PATH": "/etc/gcs/gc-secret.json"},
			errHas: []string{`connection "ds1" (conns.yaml:7)`, "GC_KEY_PATH=/etc/gcs/gc-secret.json (process env)", "/etc/gcs/gc-secret.json does not exist", "check the path"},
		},
		{
			name:   "key path is a directory",
			vars:   map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": "/etc/gcs"},
			files:  fstest.MapFS{"etc/gcs/gc-secret.json": file(sa)},
			errHas: []string{"GOOGLE_APPLICATION_CREDENTIALS=/etc/gcs (process env)", "is a directory", "give the path of the JSON key file"},
		},
		{
			name:   "unreadable key file",
			vars:   map[string]string{"GC_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": file(sa)},
			tweak:  unreadable("/k.json"),
			errHas: []string{"GC_KEY_PATH=/k.json (process env)", "cannot read key file /k.json: permission denied", "make it readable"},
		},
		{
			name:   "key file too large",
			vars:   map[string]string{"GC_KEY_PATH": "/big.json"},
			files:  fstest.MapFS{"big.json": file(bytes.Repeat([]byte(" "), maxFileSize+1))},
			errHas: []string{"GC_KEY_PATH=/big.json (process env)", "larger than"},
		},
		{
			name:   "secret mount that cannot be stat'ed",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/gc-secret.json": file(sa)},
			tweak:  permissionDenied("/etc/gcs"),
			errHas: []string{"secret gcs-secret mounted at /etc/gcs", "cannot stat /etc/gcs: permission denied"},
		},
		{
			name:   "unreadable item in a secret mount",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/GC_KEYFILE_DICT": file(sa)},
			tweak:  unreadable("/etc/gcs/GC_KEYFILE_DICT"),
			errHas: []string{"secret gcs-secret mounted at /etc/gcs (GC_KEYFILE_DICT)", "permission denied"},
		},
		{
			name:   "mounted GC_KEY_PATH item naming a missing file",
			conn:   conn(withSecret("/etc/gcs")),
			files:  fstest.MapFS{"etc/gcs/GC_KEY_PATH": text("/etc/gcs/key.json")},
			errHas: []string{"secret gcs-secret mounted at /etc/gcs (GC_KEY_PATH=/etc/gcs/key.json)", "does not exist"},
		},
		{
			name:   "invalid JSON in a key file, with its position",
			vars:   map[string]string{"GC_KEY_PATH": "/k.json"},
			files:  fstest.MapFS{"k.json": text("{\n  \"type\": \"service_account\",\n  \"private_key\" " + marker + "\n}")},
			errHas: []string{"GC_KEY_PATH=/k.json (process env)", "key file /k.json: key JSON is not valid JSON at line 3, column 17 (byte 47)"},
		},
		{
			name:   "truncated key JSON",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(sa[:len(sa)/2])},
			errHas: []string{"GC_KEYFILE_DICT (process env)", "ends too early"},
		},
		{
			name:   "raw line break inside a JSON string",
			vars:   map[string]string{"GC_KEYFILE_DICT": `{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----` + "\n" + marker + `"}`},
			errHas: []string{"GC_KEYFILE_DICT (process env)", "raw line break inside a string at line 1, column 72", `written as \n`},
		},
		{
			name:   "a Python dict is not JSON",
			vars:   map[string]string{"GOOGLE_KEYFILE_DICT": `{'type': 'service_account', 'private_key': '` + marker + `'}`},
			errHas: []string{"GOOGLE_KEYFILE_DICT (process env)", "single quotes", "json.dumps"},
		},
		{
			name:   "key JSON variable holding a path",
			vars:   map[string]string{"GC_KEYFILE_DICT": "/etc/gcs/gc-secret.json"},
			errHas: []string{"GC_KEYFILE_DICT (process env)", "looks like a file path", "GC_KEY_PATH"},
		},
		{
			name:   "key path variable holding key JSON is not echoed",
			vars:   map[string]string{"GC_KEY_PATH": string(sa)},
			errHas: []string{"GC_KEY_PATH (process env)", "not a file path", "GC_KEYFILE_DICT"},
		},
		{
			name: "key path variable with a line break is not echoed",
			conn: conn(func(c *connspec.Connection) {
				c.Env = []connspec.EnvVar{{Name: "GOOGLE_KEY_PATH", Value: "/a\n" + marker}}
			}),
			errHas: []string{"connection env GOOGLE_KEY_PATH:", "not a file path"},
		},
		{
			name:   "not a JSON object",
			vars:   map[string]string{"GC_KEYFILE_DICT": `["` + marker + `"]`},
			errHas: []string{"not a JSON object"},
		},
		{
			name:   "JSON null",
			vars:   map[string]string{"GC_KEYFILE_DICT": `null`},
			errHas: []string{"not a JSON object"},
		},
		{
			name:   "missing type",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"type": nil}))},
			errHas: []string{`no "type" field`, "service_account, authorized_user or external_account"},
		},
		{
			name:   "unsupported type is not echoed",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"type": "impersonated_" + marker}))},
			errHas: []string{`"type" is not supported`},
		},
		{
			name:   "type not a string",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"type": 7}))},
			errHas: []string{`"type" is not a string`},
		},
		{
			name:   "service account without client_email",
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": file(saKey(map[string]any{"client_email": nil}))},
			errHas: []string{"default /plx-context/.gc/gc-secret.json", `key JSON field "client_email" is missing (required for type service_account)`},
		},
		{
			name:   "service account without private_key",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"private_key": nil}))},
			errHas: []string{`key JSON field "private_key" is missing (required for type service_account)`},
		},
		{
			name:   "service account with an empty client_email",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"client_email": " "}))},
			errHas: []string{`key JSON field "client_email" is not a non-empty string`},
		},
		{
			name:   "private_key that is not PEM",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{"private_key": "MIIEv" + marker}))},
			errHas: []string{`key JSON field "private_key" is not a PEM block`},
		},
		{
			name: "private_key PEM with a corrupt body",
			vars: map[string]string{"GC_KEYFILE_DICT": string(saKey(map[string]any{
				"private_key": "-----BEGIN PRIVATE KEY-----\nTVJLUi1xN1p4" + "\n-----END PRIVATE KEY-----\n"}))},
			errHas: []string{`key JSON field "private_key" is not a valid RSA private key`},
		},
		{
			name:   "authorized user without refresh_token",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(userKey(map[string]any{"refresh_token": nil}))},
			errHas: []string{`key JSON field "refresh_token" is missing (required for type authorized_user)`},
		},
		{
			name:   "external account whose credential_source is not an object",
			vars:   map[string]string{"GC_KEYFILE_DICT": string(extKey(map[string]any{"credential_source": "/file-" + marker}))},
			errHas: []string{`key JSON field "credential_source" is not a JSON object (required for type external_account)`},
		},
		{
			name:   "empty key JSON file at the mount path",
			conn:   conn(withSecret("/plx-context/.gc/gc-secret.json")),
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": text("\n")},
			errHas: []string{"secret gcs-secret mounted at /plx-context/.gc/gc-secret.json", "key JSON is empty"},
		},
		{
			name:   "a bad default key is an error, not a silent fallback to ADC",
			files:  fstest.MapFS{"plx-context/.gc/gc-secret.json": text("{" + marker)},
			errHas: []string{"default /plx-context/.gc/gc-secret.json", "not valid JSON at line 1, column 2 (byte 1)"},
		},
		{
			name:   "bad scopes",
			vars:   map[string]string{"GC_SCOPES": `["a",`},
			errHas: []string{"GC_SCOPES (process env)", "comma-separated"},
		},
		{
			name:   "connection without a position",
			conn:   connspec.Connection{Name: "ds2"},
			vars:   map[string]string{"GC_KEY_PATH": "/nope.json"},
			errHas: []string{`connection "ds2": credentials from GC_KEY_PATH=/nope.json (process env)`},
		},
	}
	runResolveCases(t, cases)
}

func runResolveCases(t *testing.T, cases []resolveCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.conn
			if c.Name == "" {
				c = conn(nil)
			}
			env := EnvFrom(tc.vars, tc.files)
			if tc.tweak != nil {
				tc.tweak(&env)
			}
			got, err := Resolve(c, env, tc.opts)
			assertNoLeak(t, "Credentials", got)
			if err != nil {
				assertNoLeak(t, "error", err)
			}
			if tc.errHas != nil {
				if err == nil {
					t.Fatalf("Resolve = %#v, want an error", got)
				}
				var ce *Error
				if !errors.As(err, &ce) || ce.Connection != c.Name {
					t.Errorf("error %v is not a *Error naming connection %q", err, c.Name)
				}
				if strings.Contains(err.Error(), "\n") {
					t.Errorf("error is not one line: %q", err)
				}
				for _, s := range tc.errHas {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q\n  does not contain %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve: %v", err)
			}
			if got.Source != tc.source || got.String() != tc.source {
				t.Errorf("Source = %q, want %q", got.Source, tc.source)
			}
			if got.Type != tc.typ {
				t.Errorf("Type = %q, want %q", got.Type, tc.typ)
			}
			if got.Project != tc.project {
				t.Errorf("Project = %q, want %q", got.Project, tc.project)
			}
			wantScopes := tc.scopes
			if wantScopes == nil && tc.typ != TypeAnonymous && tc.typ != TypeEmulator {
				wantScopes = DefaultScopes
			}
			if !slices.Equal(got.Scopes, wantScopes) {
				t.Errorf("Scopes = %q, want %q", got.Scopes, wantScopes)
			}
			switch got.Type {
			case TypeServiceAccount, TypeAuthorizedUser, TypeExternalAccount:
				if !json.Valid(got.key) {
					t.Errorf("resolved key is not valid JSON")
				}
				if got.Type == TypeServiceAccount {
					var k struct {
						PrivateKey string `json:"private_key"`
					}
					if err := json.Unmarshal(got.key, &k); err != nil || k.PrivateKey != testPEM() {
						t.Errorf("resolved private_key differs from the test key (escaped newlines not fixed?)")
					}
				}
			default:
				if got.key != nil {
					t.Errorf("Type %s carries a key", got.Type)
				}
			}
		})
	}
}

// TestNoLeakThroughLogsOrJSON checks the other ways Credentials and errors get printed.
func TestNoLeakThroughLogsOrJSON(t *testing.T) {
	env := EnvFrom(map[string]string{"GC_KEYFILE_DICT": string(saKey(nil))}, nil)
	c, err := Resolve(conn(nil), env, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewTextHandler(&buf, nil), slog.NewJSONHandler(&buf, nil)} {
		slog.New(h).Info("resolved", "creds", c, "any", any(c))
	}
	j, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	buf.Write(j)
	out := buf.String()
	for _, secret := range []string{marker, pemBody(), "PRIVATE KEY"} {
		if strings.Contains(out, secret) {
			t.Errorf("key material %q leaked:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, "GC_KEYFILE_DICT (process env)") {
		t.Errorf("the source is missing from the logs:\n%s", out)
	}
}

func TestResolveRejectsIncompleteEnv(t *testing.T) {
	if _, err := Resolve(conn(nil), Env{}, Options{}); err == nil {
		t.Fatal("Resolve with a zero Env succeeded")
	}
	// With an emulator nothing is read, so a zero Env is fine.
	if c, err := Resolve(conn(nil), Env{}, Options{Emulator: true}); err != nil || c.Type != TypeEmulator {
		t.Fatalf("Resolve(emulator) = %v, %v", c, err)
	}
}

func TestNames(t *testing.T) {
	got := envNames([]string{"GC_KEY_PATH"})
	want := []string{"GC_KEY_PATH", "POLYAXON_GC_KEY_PATH", "gc_key_path", "POLYAXON_gc_key_path", "gckeypath", "POLYAXON_gckeypath"}
	if !slices.Equal(got, want) {
		t.Errorf("envNames = %q, want %q", got, want)
	}
	if got := fileNames([]string{"GC_KEY_PATH", "gc_key_path"}); !slices.Equal(got, []string{"GC_KEY_PATH", "gc_key_path", "gckeypath"}) {
		t.Errorf("fileNames does not dedupe: %q", got)
	}
}

// A connection whose secret is not mounted resolves to ADC (as Polyaxon does); when the client
// then finds no ADC, the error says which connection's secret was not found where, not the
// SDK's "could not find default credentials". Other failures and other sources pass through.
func TestExplainClientErrorForAnUnmountedSecret(t *testing.T) {
	sdk := errors.New("dialing: credentials: could not find default credentials. See https://example for more information")
	c := conn(withSecret("/etc/gcs"))
	cr, err := Resolve(c, EnvFrom(nil, fstest.MapFS{}), Options{})
	if err != nil || cr.Type != TypeADC {
		t.Fatalf("Resolve = %+v, %v; want ADC", cr, err)
	}
	got := cr.ExplainClientError(c, sdk)
	var ce *Error
	if !errors.As(got, &ce) {
		t.Fatalf("error %v is not a *Error", got)
	}
	for _, want := range []string{`connection "ds1" (conns.yaml:7)`, "secret gcs-secret mounted at /etc/gcs", "/etc/gcs was not found",
		"check that the secret is mounted at /etc/gcs", "volumeMounts", "GC_KEY_PATH"} {
		if !strings.Contains(got.Error(), want) {
			t.Errorf("error %q lacks %q", got, want)
		}
	}
	if strings.Contains(got.Error(), "could not find default credentials") || strings.Contains(got.Error(), "\n") {
		t.Errorf("error %q: want one line without the SDK's words", got)
	}

	// The configMap alone missing is named the same way.
	cm := conn(func(c *connspec.Connection) { c.ConfigMap = &connspec.Ref{Name: "gcs-key-path", MountPath: "/etc/cm"} })
	cr, _ = Resolve(cm, EnvFrom(nil, fstest.MapFS{}), Options{})
	if got := cr.ExplainClientError(cm, sdk); !strings.Contains(got.Error(), "check that the configMap is mounted at /etc/cm") {
		t.Errorf("configMap: %v", got)
	}
	// Mounted secret, no mountPath at all, or not ADC: the error is passed on as it is.
	for name, tc := range map[string]struct {
		c   connspec.Connection
		env Env
	}{
		"secret mounted but empty": {conn(withSecret("/etc/gcs")), EnvFrom(nil, fstest.MapFS{"etc/gcs/other": text("x")})},
		"no mountPath":             {conn(nil), EnvFrom(nil, fstest.MapFS{})},
	} {
		cr, err := Resolve(tc.c, tc.env, Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := cr.ExplainClientError(tc.c, sdk); got != sdk {
			t.Errorf("%s: %v, want the error unchanged", name, got)
		}
	}
	if got := (Credentials{Type: TypeServiceAccount}).ExplainClientError(c, sdk); got != sdk {
		t.Errorf("service account: %v, want the error unchanged", got)
	}
	if got := cr.ExplainClientError(c, nil); got != nil {
		t.Errorf("nil error became %v", got)
	}
}
