package main

// The csi command: plxfs as a Kubernetes CSI node plugin (package csi does the work). This file
// turns flags into csi.Options, opens the node's one cache and serves until SIGTERM.

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/creds"
	"github.com/plxfs/plxfs/csi"
	"github.com/plxfs/plxfs/deploy/kubernetes"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/metrics"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/store/gcs"
)

const csiDescription = `csi serves the CSI Identity and Node services on --endpoint for the kubelet, so that pods
mount connections as volumes of driver ` + csi.DriverName + `:

   volumes:
   - name: data
     csi:
       driver: ` + csi.DriverName + `
       readOnly: true
       volumeAttributes: {connection: gcs-dataset1}

Every published volume is a plxfs mount served by this one process, and all of them read
through one cache (--cache-dir, bounded by --cache-size for the whole node): pods reading the
same objects fetch each chunk once. Connections come from --config or
$POLYAXON_CONNECTIONS_CATALOG; a volume may instead give bucket: gs://BUCKET/PREFIX (and
secretPath). Credentials per volume: the PersistentVolume's nodePublishSecretRef if any, else
the connection's mounted secret and the rest of plxfs's order, else workload identity (ADC).
'plxfs kube csi' prints the manifests. On SIGTERM pending uploads finish (--grace-period) and
the mounts are removed; the next start serves them again (see README "On Kubernetes").`

// csiCommand takes the common flags except --endpoint, which is the CSI socket here (as every
// CSI driver names it); the storage endpoint is --storage-endpoint.
func csiCommand() *cli.Command {
	cmd := &cli.Command{
		Name:        "csi",
		Usage:       "run the Kubernetes CSI node plugin (" + csi.DriverName + ")",
		Description: csiDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "endpoint", Aliases: []string{"csi-endpoint"}, Value: "unix:///csi/csi.sock", EnvVars: []string{"CSI_ENDPOINT"}, Usage: "CSI socket `URL` (unix:///path)"},
			&cli.StringFlag{Name: "node-id", EnvVars: []string{"NODE_ID"}, Usage: "this node's `NAME` (spec.nodeName)"},
			&cli.StringFlag{Name: "state-dir", Value: "/var/lib/plxfs-csi", Usage: "`DIR` (on the node, surviving restarts) for volume records, FUSE mounts and staged writes"},
			&cli.StringFlag{Name: "cache-dir", Value: "/var/cache/plxfs-csi", Usage: "`DIR` of the node's one chunk cache"},
			&cli.StringFlag{Name: "cache-size", Value: "10GiB", Usage: "bound on the node's cached bytes, shared by every volume (`SIZE`)"},
			&cli.StringFlag{Name: "chunk-size", Value: "8MiB", Usage: "cache chunk `SIZE`"},
			&cli.DurationFlag{Name: "ttl", Value: fs.DefaultTTL, Usage: "default metadata TTL of volumes (a volume's ttl attribute overrides it)"},
			&cli.DurationFlag{Name: "grace-period", Value: 2 * time.Minute, Usage: "how long an unpublish (or SIGTERM) waits for pending uploads"},
			&cli.StringFlag{Name: "storage-endpoint", Usage: "storage endpoint `URL` (an emulator; no credentials are sent then). --endpoint is the CSI socket here; $STORAGE_EMULATOR_HOST works too"},
			&cli.StringFlag{Name: "metrics-addr", Usage: "serve Prometheus metrics of every volume (labelled volume, target) at http://`ADDR`/metrics"},
			&cli.BoolFlag{Name: "debug-fuse", Usage: "log every FUSE request of every volume"},
		},
		Action: runCSI,
	}
	cmd.Flags = append(cmd.Flags, stackFlags()...)
	for _, f := range commonFlags() {
		if f.Names()[0] != "endpoint" {
			cmd.Flags = append(cmd.Flags, f)
		}
	}
	return cmd
}

func runCSI(c *cli.Context) error {
	keepRunningOnClosedOutput()
	if c.NArg() > 0 {
		return usageErrorf("csi takes no arguments (got %q)", c.Args().First())
	}
	nodeID := c.String("node-id")
	if nodeID == "" {
		return usageErrorf("csi needs --node-id NAME (in the DaemonSet: the downward API's spec.nodeName)")
	}
	rt, err := getRuntime(c)
	if err != nil {
		return err
	}
	log := rt.Logger()
	// --endpoint is the CSI socket for this command, so the storage endpoint has its own flag.
	storageEndpoint := c.String("storage-endpoint")
	if storageEndpoint == "" {
		storageEndpoint = os.Getenv("STORAGE_EMULATOR_HOST")
	}
	if storageEndpoint != "" && !filepath.IsAbs(storageEndpoint) && !hasScheme(storageEndpoint) {
		storageEndpoint = "http://" + storageEndpoint
	}
	var cat *connspec.Catalog
	if rt.config != "" || os.Getenv("POLYAXON_CONNECTIONS_CATALOG") != "" {
		if cat, err = rt.Catalog(); err != nil {
			return err
		}
	}
	co := cache.Options{Logger: log}
	if co.MaxBytes, err = parseSize("--cache-size", c.String("cache-size")); err != nil {
		return err
	}
	if co.ChunkSize, err = parseSize("--chunk-size", c.String("chunk-size")); err != nil {
		return err
	}
	if co.ChunkSize > co.MaxBytes/4 {
		return usageErrorf("--chunk-size %s is more than a quarter of --cache-size %s", c.String("chunk-size"), c.String("cache-size"))
	}
	cacheDir, err := filepath.Abs(c.String("cache-dir"))
	if err != nil {
		return usageErrorf("--cache-dir: %v", err)
	}
	stateDir, err := filepath.Abs(c.String("state-dir"))
	if err != nil {
		return usageErrorf("--state-dir: %v", err)
	}
	co.Dir = filepath.Join(cacheDir, "chunks")
	stack, err := stackOptions(c)
	if err != nil {
		return err
	}
	co.FetchTimeout = stack.OpTimeout
	ch, err := cache.Open(co)
	if err != nil {
		return err
	}
	defer ch.Close()
	ttl := c.Duration("ttl")
	if ttl == 0 {
		ttl = -1
	}
	open := func(ctx context.Context, bucket string, cr creds.Credentials, counters *store.Counters) (store.Bucket, io.Closer, error) {
		o := gcs.Options{Endpoint: storageEndpoint, UserAgent: "plxfs-csi/" + version, Counters: counters}
		if storageEndpoint == "" {
			copts, err := cr.ClientOptions(ctx)
			if err != nil {
				return nil, nil, err
			}
			o.ClientOptions = copts
		}
		client, err := gcs.NewClient(ctx, o)
		if err != nil {
			return nil, nil, err
		}
		return client.Bucket(bucket), client, nil
	}
	d, err := csi.New(csi.Options{
		NodeID: nodeID, Version: version, Catalog: cat, Anonymous: rt.anonymous, Emulator: storageEndpoint != "", OpenBucket: open,
		Cache: ch, CacheSize: co.MaxBytes, StateDir: stateDir, Debug: c.Bool("debug-fuse"),
		FS: fs.Options{TTL: ttl, UID: 0, GID: 0}, Storage: stack, Grace: c.Duration("grace-period"), Logger: log,
	})
	if err != nil {
		return err
	}
	ctx := c.Context
	if addr := c.String("metrics-addr"); addr != "" {
		node := prometheus.NewRegistry()
		node.MustRegister(metrics.NewCacheCollector(ch.Stats, co.MaxBytes))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return usageErrorf("--metrics-addr %s: %v", addr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("/metrics", promhttp.HandlerFor(d.Gatherer(node), promhttp.HandlerOpts{}))
		hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go hs.Serve(l)
		defer hs.Close()
		log.Info("serving metrics", "addr", l.Addr().String())
	}
	log.Info("csi driver starting", "node_id", nodeID, "cache_dir", cacheDir, "cache_size", co.MaxBytes, "state_dir", stateDir)
	d.Recover(ctx)
	serveErr := d.Serve(ctx, c.String("endpoint"))
	log.Info("stopping: uploading pending files, then unmounting every volume")
	if err := d.Shutdown(); err != nil {
		return errors.Join(serveErr, err)
	}
	return serveErr
}

func hasScheme(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return i+2 < len(s) && s[i+1] == '/' && s[i+2] == '/'
		}
	}
	return false
}

// kubeCSICommand is `plxfs kube csi`: the manifests of the CSI deployment. (kube adds the
// common flags to its subcommands.)
func kubeCSICommand() *cli.Command {
	return &cli.Command{
		Name:  "csi",
		Usage: "print the CSI driver's manifests (CSIDriver, RBAC, connections ConfigMap, node DaemonSet, example pod)",
		Description: `csi prints, from the selected connections, everything that runs plxfs as the CSI driver
` + csi.DriverName + `: the CSIDriver, a ServiceAccount with its ClusterRole and binding, the
connections ConfigMap the driver reads, the node DaemonSet (privileged plxfs with /dev/fuse and
Bidirectional mount propagation, plus node-driver-registrar), and an example pod that reads the
first connection through an inline volume. Each connection's secret with a mountPath is mounted
in the driver at that path, as in a sidecar.

A pod reads secrets and configMaps from its own namespace only: the driver (--namespace,
kube-system) needs the connections' secrets and configMaps there, while Polyaxon keeps them in
its own (--secrets-namespace, polyaxon). When the two differ, the output starts with the
kubectl commands that copy them; or run the driver where they are (--namespace polyaxon).`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "image", EnvVars: []string{"PLXFS_IMAGE"}, Usage: "the plxfs container `IMAGE`"},
			&cli.StringFlag{Name: "namespace", Value: "kube-system", Usage: "`NAMESPACE` of the DaemonSet; its pods read the connections' secrets and configMaps there"},
			&cli.StringFlag{Name: "secrets-namespace", Value: kubernetes.DefaultSecretsNamespace, Usage: "`NAMESPACE` the connections' secrets and configMaps are in (Polyaxon's); when it is not --namespace, the output starts with the commands that copy them"},
			&cli.StringFlag{Name: "cache-size", Value: kubernetes.DefaultCSICache, Usage: "the node's cache bound (`SIZE`), shared by every volume"},
			&cli.StringFlag{Name: "memory", Value: kubernetes.DefaultCSIMemory, Usage: "memory request and limit of the driver (a Kubernetes `QUANTITY`)"},
			&cli.StringFlag{Name: "registrar-image", Value: kubernetes.DefaultRegistrar, Usage: "node-driver-registrar `IMAGE`"},
			&cli.StringFlag{Name: "config-map-name", Value: kubernetes.DefaultConfigMap, Usage: "`NAME` of the connections ConfigMap"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErrorf("kube csi takes no arguments (got %q)", c.Args().First())
			}
			if c.String("image") == "" {
				return usageErrorf("kube csi needs --image IMAGE: the plxfs image built from the Dockerfile")
			}
			if _, err := parseSize("--cache-size", c.String("cache-size")); err != nil {
				return err
			}
			rt, err := getRuntime(c)
			if err != nil {
				return err
			}
			conns, err := rt.Selected()
			if err != nil {
				return err
			}
			cat, err := rt.Catalog()
			if err != nil {
				return err
			}
			out, err := kubernetes.BuildCSI(conns, kubernetes.CSIOptions{Image: c.String("image"), Namespace: c.String("namespace"), SecretsNamespace: c.String("secrets-namespace"),
				CacheSize: c.String("cache-size"), Memory: c.String("memory"), Registrar: c.String("registrar-image"),
				ConfigMapName: c.String("config-map-name")})
			if err != nil {
				return err
			}
			for _, w := range out.Warnings {
				rt.Logger().Warn(w)
			}
			return out.WriteYAML(c.App.Writer, cat.Source)
		},
	}
}
