package creds

import "strings"

// The setting names Polyaxon's GCP provider reads, in the order it lists them.
var (
	keyPathNames = []string{"GC_KEY_PATH", "GOOGLE_KEY_PATH", "GOOGLE_APPLICATION_CREDENTIALS"}
	keyJSONNames = []string{"GC_KEYFILE_DICT", "GOOGLE_KEYFILE_DICT"}
	scopeNames   = []string{"GC_SCOPES", "GOOGLE_SCOPES"}
	projectNames = []string{"GC_PROJECT", "GOOGLE_PROJECT", "GC_PROJECT_ID", "GOOGLE_PROJECT_ID"}
)

// envPrefix is the prefix Polyaxon's config reader also tries before each variable name.
const envPrefix = "POLYAXON_"

// DefaultScopes are the OAuth scopes used when no GC_SCOPES/GOOGLE_SCOPES is set, as in
// Polyaxon.
var DefaultScopes = []string{"https://www.googleapis.com/auth/cloud-platform"}

// fileNames lists the spellings Polyaxon tries for each name: as written (upper case), lower
// case, and lower case without underscores ("GC_KEY_PATH", "gc_key_path", "gckeypath"). These
// are the file names looked for in a mounted secret or configMap directory.
func fileNames(names []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		lower := strings.ToLower(n)
		for _, v := range []string{strings.ToUpper(n), lower, strings.ReplaceAll(lower, "_", "")} {
			if !seen[v] {
				seen[v] = true
				out = append(out, v)
			}
		}
	}
	return out
}

// envNames lists the variable names tried for each name: every fileNames spelling, each
// followed by itself with the POLYAXON_ prefix ("GC_KEY_PATH", "POLYAXON_GC_KEY_PATH",
// "gc_key_path", "POLYAXON_gc_key_path", "gckeypath", "POLYAXON_gckeypath").
func envNames(names []string) []string {
	var out []string
	for _, v := range fileNames(names) {
		out = append(out, v, envPrefix+v)
	}
	return out
}
