package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/creds"
	"github.com/plxfs/plxfs/internal/bucketstack"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
)

// commonFlags are accepted by the app and by every command, so that people can type them
// where they think of them: `plxfs ls --config c.yaml ds:train` and `plxfs --config c.yaml ls ds:train`.
func commonFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Aliases: []string{"c"}, EnvVars: []string{"PLXFS_CONFIG"}, Usage: "connections `FILE` (YAML with a connections: or persistence: list, or a Polyaxon config file containing one); default: $POLYAXON_CONNECTIONS_CATALOG"},
		&cli.StringFlag{Name: "polyaxonfile", Usage: "Polyaxon operation/component `FILE`: its run.connections selects the connections (and plxfs init runs its run.init artifacts)"},
		&cli.StringSliceFlag{Name: "connections", EnvVars: []string{"PLXFS_CONNECTIONS"}, Usage: "`NAMES` of the connections to use (comma separated); default: every gcs connection"},
		&cli.StringFlag{Name: "endpoint", EnvVars: []string{"PLXFS_ENDPOINT"}, Usage: "storage endpoint `URL` (an emulator such as fake-gcs-server; no credentials are used then). $STORAGE_EMULATOR_HOST is honoured too"},
		&cli.BoolFlag{Name: "anonymous", Usage: "use no credentials (public buckets)"},
		&cli.StringFlag{Name: "log-level", Value: "info", EnvVars: []string{"PLXFS_LOG_LEVEL"}, Usage: "debug, info, warn or error"},
		&cli.StringFlag{Name: "log-format", Value: "text", EnvVars: []string{"PLXFS_LOG_FORMAT"}, Usage: "text or json"},
	}
}

// withCommonFlags appends the common flags to a command's own flags.
func withCommonFlags(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, commonFlags()...)
	for _, sub := range cmd.Subcommands {
		withCommonFlags(sub)
	}
	return cmd
}

// flagValue finds a common flag's value wherever it was given: the innermost context that set
// it wins, then environment variables and defaults.
func flagValue[T any](c *cli.Context, name string, get func(*cli.Context, string) T) T {
	for _, cc := range c.Lineage() {
		if cc.Command != nil || cc.App != nil {
			if isSetLocally(cc, name) {
				return get(cc, name)
			}
		}
	}
	return get(c, name)
}

func isSetLocally(c *cli.Context, name string) bool {
	for _, n := range c.LocalFlagNames() {
		if n == name {
			return true
		}
	}
	return false
}

const runtimesKey = "plxfs.runtimes"

// runtimes holds the one runtime of this invocation, built on first use.
type runtimes struct {
	stderr *os.File
	rt     *runtime
}

func (r *runtimes) close() {
	if r.rt != nil {
		r.rt.Close()
	}
}

// runtime is what every command needs: the logger, the connections, credentials and storage
// clients. It is built lazily from the flags of the command being run.
type runtime struct {
	log       *slog.Logger
	config    string
	pfile     string
	names     []string
	endpoint  string
	anonymous bool
	env       creds.Env

	// counters, when set before the first Bucket call (the mount sets it), counts what the
	// storage clients do (upload outcome checks); nil counts nothing.
	counters *store.Counters
	// stack is the bucket stack of every Bucket (see bucketstack). The mount sets its own
	// before the first Bucket call; the storage commands' (cliStack) is the default.
	stack bucketstack.Options

	mu      sync.Mutex
	catalog *connspec.Catalog
	clients map[string]*gcs.Client // by credential source
}

// getRuntime returns the invocation's runtime, building it from c's flags the first time.
func getRuntime(c *cli.Context) (*runtime, error) {
	rts := c.App.Metadata[runtimesKey].(*runtimes)
	if rts.rt != nil {
		return rts.rt, nil
	}
	log, err := newLogger(dropOnClosedPipe(rts.stderr), flagValue(c, "log-level", (*cli.Context).String), flagValue(c, "log-format", (*cli.Context).String))
	if err != nil {
		return nil, err
	}
	endpoint := flagValue(c, "endpoint", (*cli.Context).String)
	if endpoint == "" {
		if h := os.Getenv("STORAGE_EMULATOR_HOST"); h != "" {
			endpoint = h
		}
	}
	if endpoint != "" && !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	var names []string
	for _, n := range flagValue(c, "connections", (*cli.Context).StringSlice) {
		for _, part := range strings.Split(n, ",") {
			if part = strings.TrimSpace(part); part != "" {
				names = append(names, part)
			}
		}
	}
	rts.rt = &runtime{
		log:       log,
		config:    flagValue(c, "config", (*cli.Context).String),
		pfile:     flagValue(c, "polyaxonfile", (*cli.Context).String),
		names:     names,
		endpoint:  endpoint,
		anonymous: flagValue(c, "anonymous", (*cli.Context).Bool),
		env:       creds.OSEnv(),
		clients:   map[string]*gcs.Client{},
		stack:     cliStack,
	}
	return rts.rt, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("--log-format %q: use text or json", format)
}

// Logger is the invocation's structured logger.
func (rt *runtime) Logger() *slog.Logger { return rt.log }

// Catalog loads the connections once: --config, else $POLYAXON_CONNECTIONS_CATALOG.
func (rt *runtime) Catalog() (*connspec.Catalog, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.catalog != nil {
		return rt.catalog, nil
	}
	cat, err := connspec.Load(connspec.LoadOptions{ConfigFile: rt.config, LookupEnv: os.LookupEnv, ReadFile: os.ReadFile})
	if err != nil {
		return nil, err
	}
	rt.catalog = cat
	return cat, nil
}

// Selection is the list of connection names chosen by --connections, else by the
// polyaxonfile's run.connections; nil means every gcs connection.
func (rt *runtime) Selection() ([]string, error) {
	if len(rt.names) > 0 {
		return rt.names, nil
	}
	if rt.pfile == "" {
		return nil, nil
	}
	pf, err := rt.Polyaxonfile()
	if err != nil {
		return nil, err
	}
	return pf.Connections, nil
}

// Polyaxonfile reads --polyaxonfile.
func (rt *runtime) Polyaxonfile() (*connspec.Polyaxonfile, error) {
	if rt.pfile == "" {
		return nil, usageErrorf("no --polyaxonfile given")
	}
	data, err := os.ReadFile(rt.pfile)
	if err != nil {
		return nil, fmt.Errorf("%s: cannot read the polyaxonfile: %w", rt.pfile, errors.Unwrap(err))
	}
	return connspec.ParsePolyaxonfile(rt.pfile, data)
}

// Selected returns the connections this invocation works on.
func (rt *runtime) Selected() ([]connspec.Connection, error) {
	cat, err := rt.Catalog()
	if err != nil {
		return nil, err
	}
	names, err := rt.Selection()
	if err != nil {
		return nil, err
	}
	return cat.Select(names)
}

// Connection returns one gcs connection by name.
func (rt *runtime) Connection(name string) (connspec.Connection, error) {
	cat, err := rt.Catalog()
	if err != nil {
		return connspec.Connection{}, err
	}
	conns, err := cat.Select([]string{name})
	if err != nil {
		return connspec.Connection{}, err
	}
	return conns[0], nil
}

// Credentials resolves a connection's credentials.
func (rt *runtime) Credentials(conn connspec.Connection) (creds.Credentials, error) {
	return creds.Resolve(conn, rt.env, creds.Options{Anonymous: rt.anonymous, Emulator: rt.endpoint != ""})
}

// cliStack is the bucket stack of the storage commands: metrics only, no hedging, no per-call
// timeout and no breaker. A download takes as long as it needs and resumes its own broken
// reads, a command's calls are few, and a command's error must say what went wrong: hedged
// metadata calls gave up after 2 s with "timed out" while the client was still retrying a
// refused connection, which it reports as such ("connection to 127.0.0.1 refused; is the
// emulator running?", TestErrorMessagesOfTheBinary).
var cliStack = bucketstack.Options{OpTimeout: -1, HedgeFloor: -1, NoBreaker: true}

// Bucket returns the connection's whole bucket (not limited to its prefix), with the
// connection's credentials, through rt.stack. Callers that want the connection's view wrap it
// with store.WithPrefix(b, conn.Prefix).
func (rt *runtime) Bucket(ctx context.Context, conn connspec.Connection) (store.Bucket, error) {
	cr, err := rt.Credentials(conn)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	client, ok := rt.clients[cr.Source]
	if !ok {
		copts, err := cr.ClientOptions(ctx)
		if err != nil {
			return nil, fmt.Errorf("connection %q: %w", conn.Name, err)
		}
		client, err = gcs.NewClient(ctx, gcs.Options{Endpoint: rt.endpoint, ClientOptions: copts, UserAgent: "plxfs/" + version, Counters: rt.counters})
		if err != nil {
			if explained := cr.ExplainClientError(conn, err); explained != err {
				return nil, explained
			}
			return nil, fmt.Errorf("connection %q: %w", conn.Name, err)
		}
		rt.clients[cr.Source] = client
	}
	return bucketstack.Wrap(client.Bucket(conn.Bucket), rt.stack), nil
}

// remote is a resolved remote argument: the bucket view its path is relative to, the path
// without leading or trailing slashes, and what error messages say about it.
type remote struct {
	spec   string // as the user wrote it
	b      store.Bucket
	bucket store.Bucket // the whole bucket b is a view of
	path   string
	prefix string // of the bucket view b in the bucket ("" or "a/b/")
	scope  errScope
}

// fail explains err as a failure of doing (in words) on this remote; write says whether the
// operation creates or deletes objects (for the role to suggest).
func (r *remote) fail(doing string, write bool, err error) error {
	s := r.scope
	s.Write = write
	return explainError(s, doing, err)
}

// failListing is fail for an operation whose failure came from listing objects.
func (r *remote) failListing(doing string, write bool, err error) error {
	s := r.scope
	s.Write, s.Listing = write, true
	return explainError(s, doing, err)
}

// Remote resolves a remote argument: CONNECTION:PATH (PATH relative to the connection's
// prefix) or gs://BUCKET/PATH.
func (rt *runtime) Remote(ctx context.Context, spec string) (*remote, error) {
	if strings.HasPrefix(spec, "gs://") || strings.HasPrefix(spec, "gcs://") {
		bucket, prefix, err := connspec.ParseBucketURL(spec)
		if err != nil {
			return nil, usageErrorf("%s: %v", spec, err)
		}
		conn := rt.connectionForBucket(bucket)
		conn.Bucket = bucket
		scope := rt.scope(conn)
		scope.Conn, scope.Remote = "gs://"+bucket, spec
		b, err := rt.Bucket(ctx, conn)
		if err != nil {
			return nil, err
		}
		return &remote{spec: spec, b: b, bucket: b, path: strings.Trim(prefix, "/"), scope: scope}, nil
	}
	name, p, ok := strings.Cut(spec, ":")
	if !ok || name == "" {
		return nil, usageErrorf("%q is not a remote: write CONNECTION:PATH or gs://BUCKET/PATH", spec)
	}
	conn, err := rt.Connection(name)
	if err != nil {
		return nil, err
	}
	b, err := rt.Bucket(ctx, conn)
	if err != nil {
		return nil, err
	}
	scope := rt.scope(conn)
	scope.Remote = spec
	return &remote{spec: spec, b: store.WithPrefix(b, conn.Prefix), bucket: b, path: strings.Trim(p, "/"), prefix: conn.Prefix, scope: scope}, nil
}

// scope is what error messages about conn say: its name, bucket, credential source,
// endpoint and connections file.
func (rt *runtime) scope(conn connspec.Connection) errScope {
	s := errScope{Conn: conn.Name, Bucket: conn.Bucket, Endpoint: rt.endpoint, Config: rt.config}
	if cr, err := rt.Credentials(conn); err == nil {
		s.Creds = cr.Source
	}
	if s.Config == "" {
		if cat, err := rt.Catalog(); err == nil {
			s.Config = cat.Source
		}
	}
	return s
}

// connectionForBucket returns the first catalog connection on bucket (for its credentials), or
// an anonymous connection that resolves credentials from the environment alone.
func (rt *runtime) connectionForBucket(bucket string) connspec.Connection {
	if rt.config != "" || os.Getenv("POLYAXON_CONNECTIONS_CATALOG") != "" {
		if cat, err := rt.Catalog(); err == nil {
			for _, c := range cat.Connections {
				if c.Kind == "gcs" && c.Bucket == bucket {
					return c
				}
			}
		}
	}
	return connspec.Connection{Name: "gs://" + bucket, Kind: "gcs"}
}

// Close releases the storage clients.
func (rt *runtime) Close() {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, c := range rt.clients {
		c.Close()
	}
	rt.clients = nil
}

// usageError marks errors that are the caller's words being off (exit code 2). Errors of
// connspec's Select about a requested name are too (see isUsageError).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Sprintf(format, args...)}
}

// isUsageError decides, for every command, which errors exit 2: usage errors, and a
// connection name that is unknown or not a gcs connection (--connections, run.connections, a
// CONNECTION:PATH, init --connection, ...) wherever it was given.
func isUsageError(err error) bool {
	var u usageError
	return errors.As(err, &u) || connspec.IsSelectionError(err)
}
