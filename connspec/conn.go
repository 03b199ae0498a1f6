package connspec

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// KindGCS is the only kind plxfs mounts.
const KindGCS = "gcs"

// knownKinds are Polyaxon's connection kinds (vents ProviderKind). A connection of any of them
// is kept in the catalog; only KindGCS can be selected. A kind outside this list is a typo
// until proven otherwise, and an error.
var knownKinds = []string{
	"host_path", "volume_claim", "gcs", "s3", "wasb", "registry", "git", "aws", "gcp", "azure",
	"mysql", "postgres", "oracle", "vertica", "sqlite", "mssql", "redis", "presto", "mongo",
	"cassandra", "ftp", "grpc", "hdfs", "http", "pig_cli", "hive_cli", "hive_metastore",
	"hive_server2", "jdbc", "jenkins", "samba", "snowflake", "ssh", "cloudant", "databricks",
	"segment", "slack", "discord", "mattermost", "pagerduty", "hipchat", "webhook", "custom",
}

// Known keys, canonical spellings (snake_case aliases are mapped by canonicalKey).
var (
	connectionKeys = []string{"name", "kind", "description", "tags", "schema", "secret", "configMap", "env", "annotations", "isAlias"}
	refKeys        = []string{"name", "mountPath", "items", "defaultMode", "hostPath", "isRequested"}
	envKeys        = []string{"name", "value", "valueFrom"}
)

// Mountable reports whether plxfs can mount the connection (its kind is gcs).
func (c Connection) Mountable() bool { return c.Kind == KindGCS }

// parseConnection reads and validates one connection. It returns ok=false when the connection
// had errors (recorded in w).
func parseConnection(w *walker, n *yaml.Node, index int) (Connection, bool) {
	before := len(w.errs)
	c := Connection{Pos: w.pos(n)}
	a := at{subject: connSubject("", index)}
	if isNull(n) {
		w.fail(n, a, "", "empty list item", "remove the \"-\" or fill in the connection")
		return c, false
	}
	if deref(n).Kind != yaml.MappingNode {
		w.fail(n, a, "", "expected a mapping, got "+describe(n), "write each connection as a mapping with name, kind and schema")
		return c, false
	}
	// The name first, so that every error can name the connection.
	var nameNode *yaml.Node
	for _, e := range (&walker{file: w.file}).entries(n, a, "") {
		if e.key == "name" {
			nameNode = e.val
			if d := deref(e.val); d != nil && d.Kind == yaml.ScalarNode && !isNull(d) {
				c.Name = d.Value
			}
		}
	}
	if c.Name != "" {
		a = at{subject: connSubject(c.Name, index), conn: c.Name}
	}
	es := w.entries(n, a, "")
	switch {
	case nameNode == nil || isNull(nameNode):
		w.fail(n, a, "name", "missing", "give the connection a name (it becomes its directory under the mountpoint)")
	case c.Name != "":
		if err := checkConnectionName(c.Name); err != nil {
			w.fail(nameNode, a, "name", err.Error(), "use letters, digits, '-', '_' and '.', as Polyaxon names do")
		}
	}

	var kindNode, schemaNode *yaml.Node
	for _, e := range es {
		switch e.key {
		case "name":
			w.scalar(e.val, a, "name") // reports a name that is a list or mapping
		case "kind":
			kindNode = e.val
			c.Kind, _ = w.scalar(e.val, a, "kind")
		case "description":
			c.Description, _ = w.scalar(e.val, a, "description")
		case "tags":
			c.Tags = parseTags(w, e.val, a)
		case "schema":
			schemaNode = e.val
		case "secret":
			c.Secret = parseRef(w, e.val, a, "secret")
		case "configMap":
			c.ConfigMap = parseRef(w, e.val, a, "configMap")
		case "env":
			c.Env = parseEnv(w, e.val, a)
		case "annotations":
			c.Annotations = parseStringMap(w, e.val, a, "annotations")
		case "isAlias":
			if s, ok := w.scalar(e.val, a, "isAlias"); ok {
				if s != "true" && s != "false" {
					w.fail(e.val, a, "isAlias", "expected true or false", "write isAlias: true or remove it")
				}
				c.IsAlias = s == "true"
			}
		default:
			w.unknownKey(e, a, "", connectionKeys)
		}
	}

	switch {
	case kindNode == nil || isNull(kindNode):
		w.fail(n, a, "kind", "missing", "add kind: gcs")
	case c.Kind != "" && !slices.Contains(knownKinds, c.Kind):
		w.fail(kindNode, a, "kind", fmt.Sprintf("unknown kind %q", c.Kind), suggestFix(c.Kind, knownKinds))
	}
	parseSchema(w, schemaNode, n, a, &c)
	return c, len(w.errs) == before
}

// checkConnectionName enforces that a connection name works as a directory name and as the
// NAME in plxfs's "NAME:PATH" arguments: SegmentOK, plus no ':' (NAME:PATH would be ambiguous),
// no leading '-' (it would read as a flag), and no control characters (it is printed in
// tables and logs).
func checkConnectionName(name string) error {
	if err := SegmentOK(name); err != nil {
		return fmt.Errorf("%q cannot be a directory name (%v)", name, err)
	}
	switch {
	case strings.HasPrefix(name, "-"):
		return fmt.Errorf("%q starts with '-', which reads as a command-line flag", name)
	case strings.Contains(name, ":"):
		return fmt.Errorf("%q contains ':', which separates the connection from the path in NAME:PATH", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("%q is not valid UTF-8", name)
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return fmt.Errorf("%q contains a control character", name)
	}
	return nil
}

func parseTags(w *walker, n *yaml.Node, a at) []string {
	if d := deref(n); d != nil && d.Kind == yaml.ScalarNode && !isNull(d) {
		// Polyaxon also accepts "a, b" for tags.
		var tags []string
		for t := range strings.SplitSeq(d.Value, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tags = append(tags, t)
			}
		}
		return tags
	}
	items, _ := w.sequence(n, a, "tags", "write tags as a list of strings")
	var tags []string
	for i, it := range items {
		if s, ok := w.scalar(it, a, fmt.Sprintf("tags[%d]", i)); ok {
			tags = append(tags, s)
		}
	}
	return tags
}

// parseSchema reads schema: bucket into Bucket/Prefix (for gcs) and keeps the other scalar keys
// verbatim in Schema. Values other than bucket may be secret and are never quoted in errors.
func parseSchema(w *walker, n, conn *yaml.Node, a at, c *Connection) {
	gcs := c.Kind == KindGCS
	var es []entry
	switch {
	case isNull(n):
	case deref(n).Kind != yaml.MappingNode:
		w.fail(n, a, "schema", "expected a mapping, got "+describe(n), "write schema as a mapping, e.g. schema: {bucket: gs://BUCKET/PREFIX}")
		return
	default:
		es = w.rawEntries(n, a, "schema")
	}
	var bucketNode *yaml.Node
	{
		for _, e := range es {
			if e.key == "bucket" && gcs {
				bucketNode = e.val
				continue
			}
			v := deref(e.val)
			switch {
			case isNull(v):
			case v.Kind == yaml.ScalarNode:
				if c.Schema == nil {
					c.Schema = map[string]string{}
				}
				c.Schema[e.raw] = v.Value
			case gcs:
				// Other kinds (git flags, host_path options) may hold lists; gcs keys are
				// credentials and must be strings.
				w.fail(e.val, a, "schema."+e.raw, "expected a string, got "+describe(v), "write a single value")
			}
		}
	}
	if !gcs {
		return // not mounted: its schema is kept, not checked
	}
	where := n
	if where == nil {
		where = conn
	}
	if bucketNode == nil || isNull(bucketNode) {
		w.fail(where, a, "schema.bucket", "missing", "add schema: {bucket: gs://BUCKET/PREFIX}")
		return
	}
	url, ok := w.scalar(bucketNode, a, "schema.bucket")
	if !ok {
		return
	}
	b, p, err := ParseBucketURL(url)
	if err != nil {
		w.fail(bucketNode, a, "schema.bucket", err.Error(), "write it as gs://BUCKET or gs://BUCKET/PREFIX")
		return
	}
	c.Bucket, c.Prefix = b, p
}

func parseRef(w *walker, n *yaml.Node, a at, field string) *Ref {
	es, ok := w.mapping(n, a, field, fmt.Sprintf("write %s as a mapping with name and mountPath", field))
	if !ok {
		return nil
	}
	r := &Ref{}
	var nameSeen bool
	for _, e := range es {
		f := field + "." + e.key
		switch e.key {
		case "name":
			r.Name, nameSeen = w.scalar(e.val, a, f)
			if nameSeen && r.Name == "" {
				nameSeen = false
			}
		case "mountPath":
			if s, ok := w.scalar(e.val, a, f); ok {
				r.MountPath = s
				if !strings.HasPrefix(s, "/") {
					w.fail(e.val, a, f, fmt.Sprintf("%q is not an absolute path", s), "write the path where the volume is mounted, starting with /")
				} else if strings.IndexByte(s, 0) >= 0 {
					w.fail(e.val, a, f, "contains a NUL byte", "write a valid path")
				}
			}
		case "items":
			items, _ := w.sequence(e.val, a, f, "write items as a list of key names")
			for i, it := range items {
				s, ok := w.scalar(it, a, fmt.Sprintf("%s[%d]", f, i))
				if !ok {
					continue
				}
				if err := SegmentOK(s); err != nil {
					w.fail(it, a, fmt.Sprintf("%s[%d]", f, i), fmt.Sprintf("%q is not a file name (%v)", s, err), "list the secret's key names")
					continue
				}
				r.Items = append(r.Items, s)
			}
		case "defaultMode":
			if s, ok := w.scalar(e.val, a, f); ok {
				m, err := parseDefaultMode(s)
				if err != nil {
					w.fail(e.val, a, f, fmt.Sprintf("%q is not a file mode", s), "write an octal mode such as 0400")
				} else {
					r.DefaultMode = &m
				}
			}
		case "hostPath", "isRequested":
			w.scalar(e.val, a, f) // Polyaxon fields that plxfs does not use
		default:
			w.unknownKey(e, a, field, refKeys)
		}
	}
	if !nameSeen {
		w.fail(n, a, field+".name", "missing", fmt.Sprintf("name the Kubernetes %s", map[string]string{"secret": "Secret", "configMap": "ConfigMap"}[field]))
	}
	return r
}

// parseEnv accepts a list of {name, value} (Kubernetes style) or a mapping NAME: value. Entries
// with valueFrom are resolved by Kubernetes into the container's environment, where creds finds
// them; they are checked but not kept. Values are never quoted in errors.
func parseEnv(w *walker, n *yaml.Node, a at) []EnvVar {
	d := deref(n)
	if d != nil && d.Kind == yaml.MappingNode {
		var env []EnvVar
		for _, e := range w.rawEntries(d, a, "env") {
			if v, ok := w.scalar(e.val, a, "env."+e.raw); ok || isNull(e.val) {
				env = append(env, EnvVar{Name: e.raw, Value: v})
			}
		}
		return env
	}
	items, _ := w.sequence(n, a, "env", "write env as a list of {name, value} or a mapping NAME: value")
	var env []EnvVar
	for i, it := range items {
		f := fmt.Sprintf("env[%d]", i)
		es, ok := w.mapping(it, a, f, "write each env entry as {name: NAME, value: VALUE}")
		if !ok {
			continue
		}
		var ev EnvVar
		var named, fromRef bool
		for _, e := range es {
			switch e.key {
			case "name":
				ev.Name, named = w.scalar(e.val, a, f+".name")
			case "value":
				ev.Value, _ = w.scalar(e.val, a, f+".value")
			case "valueFrom":
				fromRef = true
			default:
				w.unknownKey(e, a, f, envKeys)
			}
		}
		if !named || ev.Name == "" {
			w.fail(it, a, f+".name", "missing", "give each env entry a name")
			continue
		}
		if !fromRef {
			env = append(env, ev)
		}
	}
	return env
}

func parseStringMap(w *walker, n *yaml.Node, a at, field string) map[string]string {
	if isNull(n) {
		return nil
	}
	if deref(n).Kind != yaml.MappingNode {
		w.fail(n, a, field, "expected a mapping, got "+describe(n), "write "+field+" as a mapping of strings")
		return nil
	}
	es := w.rawEntries(n, a, field)
	m := map[string]string{}
	for _, e := range es {
		if v, ok := w.scalar(e.val, a, field+"."+e.raw); ok {
			m[e.raw] = v
		}
	}
	return m
}
