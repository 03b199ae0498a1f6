package csi

import (
	iofs "io/fs"
	"path"
	"slices"
	"strings"
	"testing/fstest"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/creds"
)

// requestSecretDir is where a NodePublishVolume request's secrets (a PersistentVolume's
// nodePublishSecretRef) appear to credential resolution: a directory that exists only in
// memory, one key per file, as Kubernetes would mount the secret. Nothing is written to disk.
const requestSecretDir = "/plxfs-csi/node-publish-secret"

// requestSecretName names the request's secrets in credential sources and errors.
const requestSecretName = "nodePublishSecretRef"

// secretKeys are the keys of a request's secrets that can hold a key: the file name Polyaxon's
// documentation uses, and the key-JSON variable names (a key-path name would hold a path,
// which means nothing inside a secret handed over the wire).
var secretKeys = []string{"gc-secret.json", "GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT", "gc_keyfile_dict", "google_keyfile_dict", "gckeyfiledict", "googlekeyfiledict"}

// withRequestSecrets makes conn's credentials come from the request's secrets: they are
// resolved first (as the connection's mounted secret), before anything the connection or the
// driver's environment offers. It fails, naming the keys it looks for and never a value, when
// none of them is present.
func withRequestSecrets(conn connspec.Connection, base creds.Env, secrets map[string]string) (connspec.Connection, creds.Env, error) {
	found := false
	for _, k := range secretKeys {
		if strings.TrimSpace(secrets[k]) != "" {
			found = true
		}
	}
	if !found {
		return conn, base, invalid("%s: none of the keys %s is set (the secret's key names: %s)", requestSecretName, strings.Join(secretKeys[:3], ", "), keyNames(secrets))
	}
	files := fstest.MapFS{}
	dir := strings.TrimPrefix(requestSecretDir, "/")
	for k, v := range secrets {
		if connspec.SegmentOK(k) == nil {
			files[path.Join(dir, k)] = &fstest.MapFile{Data: []byte(v), Mode: 0o400}
		}
	}
	mem := creds.EnvFrom(nil, files)
	env := creds.Env{
		LookupEnv: base.LookupEnv,
		ReadFile: func(name string) ([]byte, error) {
			if under(name, requestSecretDir) {
				return mem.ReadFile(name)
			}
			return base.ReadFile(name)
		},
		Stat: func(name string) (iofs.FileInfo, error) {
			if under(name, requestSecretDir) {
				return mem.Stat(name)
			}
			return base.Stat(name)
		},
	}
	conn.Secret = &connspec.Ref{Name: requestSecretName, MountPath: requestSecretDir}
	return conn, env, nil
}

// keyNames lists a secret's key names (never values), for errors.
func keyNames(secrets map[string]string) string {
	if len(secrets) == 0 {
		return "none"
	}
	var names []string
	for k := range secrets {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func under(name, dir string) bool {
	name = path.Clean("/" + name)
	return name == dir || strings.HasPrefix(name, dir+"/")
}
