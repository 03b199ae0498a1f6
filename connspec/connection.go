package connspec

// Connection is one Polyaxon connection, validated and normalised.
type Connection struct {
	Name        string
	Kind        string // "gcs" is the only kind plxfs mounts
	Description string
	Tags        []string

	// Bucket and Prefix come from schema.bucket ("gs://BUCKET/PREFIX"). Prefix is normalised:
	// "" for the whole bucket, otherwise "a/b/" (no leading slash, one trailing slash).
	Bucket string
	Prefix string
	// Schema holds the schema's other keys verbatim (e.g. a key path or key JSON, as Polyaxon
	// allows credentials in the schema). Values may be secret: never log them.
	Schema map[string]string

	Secret    *Ref // nil when absent
	ConfigMap *Ref // nil when absent
	// Env is the connection's env entries, in file order; values may be secret: never log them.
	Env []EnvVar

	// Annotations are the connection's annotations (kept, not used by plxfs).
	Annotations map[string]string
	// IsAlias is Polyaxon's isAlias flag (kept, not used by plxfs).
	IsAlias bool

	// Pos is where the connection was defined, for error messages.
	Pos Pos
}

// Ref is a Kubernetes secret or configMap reference as Polyaxon writes it.
type Ref struct {
	Name        string
	MountPath   string
	Items       []string
	DefaultMode *int
}

// EnvVar is one name=value pair from a connection's env.
type EnvVar struct {
	Name  string
	Value string
}

// Pos locates a definition: the file (or "$POLYAXON_CONNECTIONS_CATALOG") and the 1-based line
// (0 when unknown, as for JSON from the environment).
type Pos struct {
	File string
	Line int
}

// URL is the connection's bucket URL, "gs://BUCKET/PREFIX".
func (c Connection) URL() string { return "gs://" + c.Bucket + "/" + c.Prefix }
