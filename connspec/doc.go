// Package connspec reads Polyaxon connection specs and owns the mapping between GCS object
// names and local paths.
//
// # Connections
//
// A connection is a named bucket + prefix with credentials hints (a Kubernetes secret and
// configMap with their mount paths, env entries, schema keys). plxfs mounts each selected
// connection as one directory under its mountpoint, named after the connection. Connections
// arrive the ways Polyaxon hands them over:
//
//   - a YAML file (--config, $PLXFS_CONFIG): a top-level connections: or persistence: list, or a
//     Polyaxon deployment/agent config (Helm values) holding one, at the top level (with
//     artifactsStore:) or one level down (agent:, polyaxon:…); other keys are ignored
//     (ParseYAML);
//   - $POLYAXON_CONNECTIONS_CATALOG, JSON {"connections": [...]}, which Polyaxon v2 sets in a
//     job's containers (ParseCatalogJSON);
//   - Load picks one of those, and Catalog.Select picks the connections to mount, by name
//     (--connections, or run.connections from a Polyaxon component/operation read by
//     ParsePolyaxonfile, which also returns run.init's artifacts entries for "plxfs init").
//
// YAML and JSON go through the same node walker (go.yaml.in/yaml/v3 nodes; JSON is turned
// into nodes by encoding/json, since JSON escapes like "\/" are not YAML), so both obey the
// same rules and produce the same errors.
//
// # Errors
//
// Every problem is an *Error whose message is one line:
//
//	conns.yaml:12: connection "gcs-data": secret.mounthPath: unknown key; did you mean "mountPath"?
//
// Parsing does not stop at the first problem: the returned error joins all of them (one per
// line; use errors.As to get the first *Error). Positions from the JSON catalog have no line,
// nor do problems with a whole file ("no connections found"). YAML syntax errors carry the
// line yaml.v3 reports, corrected to 1-based.
// Messages never contain secret values: env values and schema values other than bucket are
// never quoted, and syntax errors give a line or byte offset, not the text.
//
// # Rules
//
//   - Connection keys: name, kind, description, tags, schema, secret, configMap, env,
//     annotations, isAlias (snake_case spellings such as config_map are accepted). secret and
//     configMap keys: name, mountPath, items, defaultMode, hostPath, isRequested. env entries:
//     name, value, valueFrom (valueFrom entries are resolved by Kubernetes into the container's
//     environment and are not kept). Any other key is an error with a "did you mean"; schema
//     is the exception, since Polyaxon keeps credentials there under arbitrary keys.
//   - Names are required, unique, and usable both as a directory name and as NAME in plxfs's
//     NAME:PATH arguments: they pass SegmentOK (not empty, not "." or "..", no "/" or NUL, at
//     most 255 bytes), do not start with "-" (would read as a flag), contain no ":" (would
//     split NAME:PATH) and no control characters.
//   - kind must be one of Polyaxon's connection kinds. Only gcs is mounted; other kinds (s3,
//     wasb, host_path, volume_claim, git, …) stay in the catalog and are ignored unless
//     selected, in which case Select reports them as not supported.
//   - A gcs connection needs schema.bucket = gs://BUCKET[/PREFIX] (gcs:// accepted), see
//     ParseBucketURL. Prefixes are normalised to "" or "a/b/"; empty segments are dropped and
//     "." / ".." segments rejected, not resolved. Other schema keys of a gcs connection must
//     be strings.
//   - run.connections and run.init come from a component's run: or an operation's
//     component.run:, combined with the operation's runPatch by its patchStrategy (post_merge by
//     default, as in Polyaxon). Init entries are checked against Polyaxon's init keys; only
//     artifacts entries are returned.
//   - secret/configMap need a name; mountPath, when given, must be absolute; items must be
//     file names; defaultMode is a mode up to 0777 (number, or string such as "0400").
//
// # Object names and local paths
//
// Only this package converts between a GCS object name (relative to a connection's prefix)
// and a local path (relative to the connection's directory). The rules are strict and
// symmetrical: NameToPath rejects names that cannot be a path without changing meaning
// (absolute, empty segments, "." or "..", NUL, a segment over 255 bytes) instead of cleaning
// them; a trailing "/" (a directory placeholder) is dropped once. PathToName accepts only
// clean relative paths and is its inverse. SafeJoin proves lexically that root + rel stays under
// root; it cannot see symlinks, so code that writes files opens them through os.Root, which
// refuses to follow a symlink out of the directory.
//
// # Decisions
//
//   - Unknown kinds and unknown keys are errors, as in Polyaxon (whose models forbid extra
//     fields): a typo in mountPath otherwise silently breaks credentials.
//   - Names with bytes that are not UTF-8 are accepted as paths (Linux paths are bytes) but
//     never reach GCS from the YAML side: YAML and JSON are UTF-8.
//   - "connections:" with no value is an empty list. A catalog without gcs connections is
//     fine to parse; Select is what fails when there is nothing to mount.
//   - A top-level artifactsStore: is added to the catalog unless a listed connection has the
//     same name.
//   - No global mutable state; Load takes its environment and file reader as parameters
//     (nil means the real ones).
package connspec
