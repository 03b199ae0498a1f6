package creds

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"unicode"

	"github.com/plxfs/plxfs/connspec"
)

// Options change what Resolve looks for.
type Options struct {
	Anonymous bool // --anonymous: no credentials at all
	Emulator  bool // an emulator endpoint is in use: no credentials needed or looked for
}

// defaultContextRoot is Polyaxon's context root when POLYAXON_CONTEXT_ROOT is unset.
const defaultContextRoot = "/plx-context"

// secretFileName is the file name the Polyaxon docs use for a mounted key
// (kubectl create secret generic gcs-secret --from-file=gc-secret.json=...).
const secretFileName = "gc-secret.json"

// maxPathLen bounds a key path value; anything longer is not a path (PATH_MAX is 4096).
const maxPathLen = 4096

// Resolve finds the credentials for conn, looking only through env, in the order given in the
// package documentation. With opts.Emulator or opts.Anonymous it looks for nothing. A bad key
// is an *Error naming the connection and the source; no error or description ever contains
// key material.
func Resolve(conn connspec.Connection, env Env, opts Options) (Credentials, error) {
	switch {
	case opts.Emulator:
		return Credentials{Source: "none (emulator)", Type: TypeEmulator}, nil
	case opts.Anonymous:
		return Credentials{Source: "anonymous", Type: TypeAnonymous}, nil
	}
	if env.LookupEnv == nil || env.ReadFile == nil || env.Stat == nil {
		return Credentials{}, errors.New("creds: Env has a nil function; use creds.OSEnv() or creds.EnvFrom")
	}
	r := &resolver{conn: conn, env: env}

	mounts, err := r.mounts()
	if err != nil {
		return Credentials{}, err
	}
	steps := []func([]mount) (*candidate, error){r.fromMounts, r.fromConnection, r.fromProcessEnv, r.fromDefaultPath}
	var found *candidate
	for _, step := range steps {
		if found, err = step(mounts); err != nil {
			return Credentials{}, err
		}
		if found != nil {
			break
		}
	}

	c := Credentials{Source: "application default credentials", Type: TypeADC, unmounted: r.unmounted}
	if found != nil {
		k, err := r.load(found)
		if err != nil {
			return Credentials{}, err
		}
		c = Credentials{Source: found.source, Type: k.typ, Project: k.projectID, key: k.json}
	}

	scopes, where, err := r.setting(mounts, scopeNames)
	if err != nil {
		return Credentials{}, err
	}
	if c.Scopes, err = parseScopes(scopes); err != nil {
		return Credentials{}, r.fail(where, err)
	}
	if c.Scopes == nil {
		c.Scopes = slices.Clone(DefaultScopes)
	}
	project, _, err := r.setting(mounts, projectNames)
	if err != nil {
		return Credentials{}, err
	}
	if project != "" {
		c.Project = project
	}
	return c, nil
}

type resolver struct {
	conn      connspec.Connection
	env       Env
	unmounted []mount // mountPaths that do not exist
}

// candidate is a key found but not yet loaded: a key file path or key JSON bytes.
type candidate struct {
	source string
	path   string // key file; "" when json is set
	json   []byte
}

// mount is a secret/configMap mountPath of the connection.
type mount struct {
	kind  string // "secret" or "configMap"
	label string // "secret gcs-secret mounted at /etc/gcs"
	path  string
	isDir bool
}

func (r *resolver) fail(source string, err error) error {
	return &Error{Connection: r.conn.Name, Pos: r.conn.Pos, Source: source, Err: err}
}

// mounts returns the connection's secret then configMap mountPath, skipping those that are
// unset or do not exist (Polyaxon skips them too: outside Kubernetes they often don't).
func (r *resolver) mounts() ([]mount, error) {
	var out []mount
	for _, m := range []struct {
		kind string
		ref  *connspec.Ref
	}{{"secret", r.conn.Secret}, {"configMap", r.conn.ConfigMap}} {
		if m.ref == nil || m.ref.MountPath == "" {
			continue
		}
		label := m.kind
		if m.ref.Name != "" {
			label += " " + m.ref.Name
		}
		label += " mounted at " + m.ref.MountPath
		fi, err := r.env.Stat(m.ref.MountPath)
		if errors.Is(err, fs.ErrNotExist) {
			r.unmounted = append(r.unmounted, mount{kind: m.kind, label: label, path: m.ref.MountPath})
			continue
		}
		if err != nil {
			return nil, r.fail(label, fmt.Errorf("cannot stat %s: %w; make the mount readable by plxfs",
				m.ref.MountPath, unwrapPath(err)))
		}
		out = append(out, mount{kind: m.kind, label: label, path: m.ref.MountPath, isDir: fi.IsDir()})
	}
	return out, nil
}

// fromMounts is step 1: a mountPath that is a file is the key; in a directory, files named
// after the key-path keys, then after the key-JSON keys, then gc-secret.json.
func (r *resolver) fromMounts(mounts []mount) (*candidate, error) {
	for _, m := range mounts {
		if !m.isDir {
			return &candidate{source: m.label, path: m.path}, nil
		}
		for _, n := range fileNames(keyPathNames) {
			b, ok, err := r.readOptional(filepath.Join(m.path, n))
			if err != nil {
				return nil, r.fail(m.label+" ("+n+")", err)
			}
			if v := strings.TrimSpace(string(b)); ok && v != "" {
				if err := checkPath(n, v); err != nil {
					return nil, r.fail(m.label+" ("+n+")", err)
				}
				return &candidate{source: m.label + " (" + n + "=" + v + ")", path: v}, nil
			}
		}
		for _, n := range fileNames(keyJSONNames) {
			b, ok, err := r.readOptional(filepath.Join(m.path, n))
			if err != nil {
				return nil, r.fail(m.label+" ("+n+")", err)
			}
			if ok && len(bytes.TrimSpace(b)) > 0 {
				return &candidate{source: m.label + " (" + n + ")", json: b}, nil
			}
		}
		p := filepath.Join(m.path, secretFileName)
		if _, err := r.env.Stat(p); err == nil {
			return &candidate{source: m.label + " (" + secretFileName + ")", path: p}, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, r.fail(m.label+" ("+secretFileName+")",
				fmt.Errorf("cannot stat %s: %w; make it readable by plxfs", p, unwrapPath(err)))
		}
	}
	return nil, nil
}

// fromConnection is step 2: the connection's schema, then its env entries.
func (r *resolver) fromConnection([]mount) (*candidate, error) {
	schema := func(n string) (string, bool) { v, ok := r.conn.Schema[n]; return v, ok }
	env := func(n string) (string, bool) {
		for i := len(r.conn.Env) - 1; i >= 0; i-- { // the last one wins, as in Kubernetes
			if r.conn.Env[i].Name == n {
				return r.conn.Env[i].Value, true
			}
		}
		return "", false
	}
	if c, err := r.fromVars(schema, "connection schema ", ""); c != nil || err != nil {
		return c, err
	}
	return r.fromVars(env, "connection env ", "")
}

// fromProcessEnv is step 3.
func (r *resolver) fromProcessEnv([]mount) (*candidate, error) {
	return r.fromVars(r.env.LookupEnv, "", " (process env)")
}

// fromVars looks up the key-path names, then the key-JSON names, in one set of variables.
func (r *resolver) fromVars(lookup func(string) (string, bool), prefix, suffix string) (*candidate, error) {
	for _, n := range envNames(keyPathNames) {
		v, _ := lookup(n)
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		if err := checkPath(n, v); err != nil {
			return nil, r.fail(prefix+n+suffix, err)
		}
		return &candidate{source: prefix + n + "=" + v + suffix, path: v}, nil
	}
	for _, n := range envNames(keyJSONNames) {
		if v, _ := lookup(n); strings.TrimSpace(v) != "" {
			return &candidate{source: prefix + n + suffix, json: []byte(v)}, nil
		}
	}
	return nil, nil
}

// fromDefaultPath is step 4: ${POLYAXON_CONTEXT_ROOT:-/plx-context}/.gc/gc-secret.json.
func (r *resolver) fromDefaultPath([]mount) (*candidate, error) {
	root, _ := r.env.LookupEnv("POLYAXON_CONTEXT_ROOT")
	if root == "" {
		root = defaultContextRoot
	}
	p := filepath.Join(root, ".gc", secretFileName)
	_, err := r.env.Stat(p)
	switch {
	case err == nil:
		return &candidate{source: "default " + p, path: p}, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	}
	return nil, r.fail("default "+p, fmt.Errorf("cannot stat %s: %w; make it readable by plxfs", p, unwrapPath(err)))
}

// load reads and validates a candidate's key.
func (r *resolver) load(c *candidate) (key, error) {
	data := c.json
	if c.path != "" {
		var err error
		if data, err = r.readKeyFile(c.path); err != nil {
			return key{}, r.fail(c.source, err)
		}
	}
	k, err := loadKeyJSON(data)
	if err != nil {
		if c.path != "" {
			err = fmt.Errorf("key file %s: %w", c.path, err)
		}
		return key{}, r.fail(c.source, err)
	}
	return k, nil
}

func (r *resolver) readKeyFile(p string) ([]byte, error) {
	fi, err := r.env.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("key file %s does not exist; check the path and that the secret is mounted there", p)
	case err != nil:
		return nil, fmt.Errorf("cannot stat key file %s: %w; make it readable by plxfs", p, unwrapPath(err))
	case fi.IsDir():
		return nil, fmt.Errorf("key file %s is a directory; give the path of the JSON key file inside it", p)
	case !fi.Mode().IsRegular():
		return nil, fmt.Errorf("key file %s is not a regular file; give the path of the JSON key file", p)
	}
	data, err := r.env.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("cannot read key file %s: %w; make it readable by plxfs", p, unwrapPath(err))
	}
	return data, nil
}

// readOptional reads a small file that may be absent; a directory counts as absent.
func (r *resolver) readOptional(p string) ([]byte, bool, error) {
	fi, err := r.env.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("cannot stat %s: %w; make it readable by plxfs", p, unwrapPath(err))
	case fi.IsDir():
		return nil, false, nil
	}
	b, err := r.env.ReadFile(p)
	if err != nil {
		return nil, false, fmt.Errorf("cannot read %s: %w; make it readable by plxfs", p, unwrapPath(err))
	}
	return b, true, nil
}

// setting finds a plain setting (scopes, project) the way Polyaxon's read_keys does, with the
// connection's own entries inserted: files in the mounted directories, the connection's schema
// and env, then the process environment. It returns the trimmed value and where it was found.
func (r *resolver) setting(mounts []mount, names []string) (value, where string, err error) {
	for _, m := range mounts {
		if !m.isDir {
			continue
		}
		for _, n := range fileNames(names) {
			b, ok, err := r.readOptional(filepath.Join(m.path, n))
			if err != nil {
				return "", "", r.fail(m.label+" ("+n+")", err)
			}
			if v := strings.TrimSpace(string(b)); ok && v != "" {
				return v, m.label + " (" + n + ")", nil
			}
		}
	}
	for _, n := range envNames(names) {
		if v := strings.TrimSpace(r.conn.Schema[n]); v != "" {
			return v, "connection schema " + n, nil
		}
	}
	for _, n := range envNames(names) {
		for i := len(r.conn.Env) - 1; i >= 0; i-- {
			if e := r.conn.Env[i]; e.Name == n {
				if v := strings.TrimSpace(e.Value); v != "" {
					return v, "connection env " + n, nil
				}
				break
			}
		}
	}
	for _, n := range envNames(names) {
		if v, _ := r.env.LookupEnv(n); strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), n + " (process env)", nil
		}
	}
	return "", "", nil
}

// parseScopes reads a comma-separated list (as Polyaxon) or a JSON array of strings. "" is nil.
func parseScopes(s string) ([]string, error) {
	if s == "" {
		return nil, nil
	}
	var items []string
	if strings.HasPrefix(s, "[") {
		if err := json.Unmarshal([]byte(s), &items); err != nil {
			return nil, errors.New(`scopes are neither a comma-separated list nor a JSON array of strings; write e.g. "https://www.googleapis.com/auth/devstorage.read_write"`)
		}
	} else {
		items = strings.Split(s, ",")
	}
	var out []string
	for _, it := range items {
		if it = strings.TrimSpace(it); it != "" {
			out = append(out, it)
		}
	}
	return out, nil
}

// checkPath rejects key-path values that cannot be paths, typically key JSON put into
// GC_KEY_PATH by mistake. The value is never quoted: it may be the key itself.
func checkPath(name, v string) error {
	bad := len(v) > maxPathLen || strings.HasPrefix(v, "{") ||
		strings.IndexFunc(v, func(r rune) bool { return unicode.IsControl(r) || r == unicode.ReplacementChar }) >= 0
	if !bad {
		return nil
	}
	return fmt.Errorf("the value of %s is not a file path (it looks like key JSON, or has line breaks or control characters); "+
		"put the key file's path in %s, or the key JSON itself in GC_KEYFILE_DICT", name, name)
}

// unwrapPath drops a *fs.PathError's wrapping, whose path the caller already names.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
