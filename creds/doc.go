// Package creds decides, for one Polyaxon connection, which Google Cloud credentials plxfs
// uses, the way Polyaxon v2's GCP provider ("vents") finds them, and turns the result into
// google.golang.org/api options for a storage client.
//
// Resolution is per connection: two connections in one pod can carry two different secrets.
// Resolve reads nothing but the Env it is given (variables, ReadFile, Stat), so tests pass a
// map and an in-memory filesystem (EnvFrom) and the real process is never consulted; OSEnv is
// the real thing.
//
// # Resolution order
//
// The first source that yields a key wins. A key found but unusable (missing or unreadable
// file, invalid JSON, wrong type, missing field) is an error; Resolve never falls back past a
// bad key to a later source.
//
//  0. With an emulator endpoint (--endpoint, STORAGE_EMULATOR_HOST) nothing is looked for:
//     Type "emulator". Otherwise with --anonymous nothing is looked for: Type "anonymous".
//  1. The connection's secret.mountPath, then its configMap.mountPath, when they exist:
//     - a file is the key file itself;
//     - a directory is searched, as Kubernetes mounts secret items as files, for a file named
//     after a key-path name (its content is the key file's path), then after a key-JSON name
//     (its content is the key JSON), then for gc-secret.json.
//  2. The connection's schema entries, then its env entries (the last of duplicate names
//     wins), for the same names: a key-path name gives a key file path, a key-JSON name the
//     key JSON.
//  3. The process environment, for the same names.
//  4. ${POLYAXON_CONTEXT_ROOT:-/plx-context}/.gc/gc-secret.json, if it exists.
//  5. Application Default Credentials (Type "adc"; workload identity on GKE). Resolve does not
//     look for them; the Google client does, when the storage client is created. When it finds
//     none and the connection's secret or configMap mountPath did not exist, the client's
//     error is to be passed through Credentials.ExplainClientError, which says so.
//
// Key-path names, in order: GC_KEY_PATH, GOOGLE_KEY_PATH, GOOGLE_APPLICATION_CREDENTIALS.
// Key-JSON names: GC_KEYFILE_DICT, GOOGLE_KEYFILE_DICT. Within one source every key-path name
// is tried before any key-JSON name: a key path wins over key JSON.
//
// Each name is tried in Polyaxon's spellings: as written, lower case, and lower case without
// underscores (GC_KEY_PATH, gc_key_path, gckeypath). In steps 2 and 3 each spelling is
// followed by itself with a POLYAXON_ prefix (POLYAXON_GC_KEY_PATH, POLYAXON_gc_key_path,
// POLYAXON_gckeypath). Upper case without underscores (GCKEYPATH) is not a Polyaxon spelling
// and is not tried. Empty and blank values count as unset; values are trimmed.
//
// Scopes (GC_SCOPES, GOOGLE_SCOPES: comma-separated, or a JSON array) and the project
// (GC_PROJECT, GOOGLE_PROJECT, GC_PROJECT_ID, GOOGLE_PROJECT_ID) are looked up independently of
// the key, in the same spellings: files in the mounted directories, the connection's schema,
// its env, then the process environment. Scopes default to DefaultScopes (cloud-platform); the
// project defaults to a service account key's project_id.
//
// # Keys
//
// A key JSON may be a service_account (client_email and private_key required; private_key
// must be an RSA key in PEM), authorized_user (client_id, client_secret, refresh_token) or
// external_account (audience, subject_token_type, credential_source object) key. Surrounding
// whitespace and a UTF-8 BOM are tolerated. In private_key the two characters `\` `n` are
// turned into newlines, as Polyaxon does for keys pasted through shells and YAML.
//
// # Secrets
//
// Key material never reaches an error, a log line or a description:
//   - key JSON errors are *KeyError values built from an enumeration of problems, a field name
//     and a position (line, column, byte offset); encoding/json's messages, which quote the
//     offending character, are not used. FuzzLoadKeyJSON checks this;
//   - a key-path variable whose value cannot be a path (key JSON put in GC_KEY_PATH, line
//     breaks) is reported by name only;
//   - Credentials keeps the key unexported; String, GoString, LogValue and encoding/json show
//     the source, type, scopes and project only.
//
// Errors are *Error: the connection (and where it is defined), the source (a variable name, a
// file path, a mounted secret) and what is wrong with what to do, on one line.
//
// # Decisions
//
//   - Sources are tried one at a time, and the key path beats key JSON only within a source.
//     Polyaxon instead looks for a key path in every source before any key JSON; plxfs's order
//     means a connection's own secret always beats process-wide variables, which is what makes
//     two connections with two secrets work.
//   - A mountPath that does not exist is skipped silently, as in Polyaxon: configurations are
//     shared between pods and laptops. Anything that exists and is wrong is an error.
//   - Polyaxon refuses key paths not ending in ".json"; plxfs accepts any regular file (the Go
//     client does, and GOOGLE_APPLICATION_CREDENTIALS often has no extension). Directories and
//     devices are refused; OSEnv reads at most 1 MiB.
//   - The `\n` fix applies to keys from files too, not only to key JSON in variables: a valid
//     key never contains that sequence, so the fix cannot break one.
//   - Polyaxon turns the values "true"/"false" into booleans; plxfs does not (neither is a
//     path, key or scope).
//   - Step 1 also looks for gc-secret.json inside a mounted directory, the file name Polyaxon's
//     documentation uses when creating the secret.
//   - An external_account key makes the Google client read its credential_source (a file, a
//     URL or, only with GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1, a command). Keys come
//     from the user's own secrets, so this is accepted, and the key type is pinned when it is
//     handed to the client (option.WithAuthCredentialsJSON).
package creds
