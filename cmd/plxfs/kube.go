package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/deploy/kubernetes"
)

func kubeCommand() *cli.Command {
	return withCommonFlags(&cli.Command{
		Name:  "kube",
		Usage: "print Kubernetes manifests that run plxfs beside a job",
		Subcommands: []*cli.Command{{
			Name:  "sidecar",
			Usage: "print the plxfs sidecar (or init containers), its volumes and ConfigMap, from the connection specs",
			Description: `sidecar prints two YAML documents built from the selected connections, so that the
secrets, configMaps and mount paths a pod gets cannot drift from the connections plxfs reads:

  1. a ConfigMap (--config-map-name) holding those connections as a connections file;
  2. a pod spec fragment to merge into a Job's spec.template.spec: the plxfs container, the
     volumes, and a container "main" listing what your own container must add.

Each connection's secret with a mountPath is mounted read-only at exactly that path (one volume
per secret, items and defaultMode honoured); without a mountPath it comes in through envFrom, as
Polyaxon does; configMaps likewise (a configMap's GC_KEY_PATH through envFrom).

By default plxfs is a native sidecar (Kubernetes 1.29+: an init container with restartPolicy
Always and a startup probe running plxfs wait). --native=false prints a regular sidecar that
exits when your container creates ` + kubernetes.DoneFile + `. --init prints one unprivileged
plxfs init container per connection instead, copying it into an emptyDir.

Schema keys other than bucket and env entries are not written to the ConfigMap (they may hold
key material); a warning names them.`,
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "image", EnvVars: []string{"PLXFS_IMAGE"}, Usage: "the plxfs container `IMAGE` (built from the Dockerfile)"},
				&cli.StringFlag{Name: "mount-path", Usage: "`DIR` where the connections appear in the main container (default " + kubernetes.DefaultMountPath + ", with --init " + kubernetes.DefaultInitPath + ")"},
				&cli.StringFlag{Name: "config-map-name", Value: kubernetes.DefaultConfigMap, Usage: "`NAME` of the ConfigMap holding the connections file"},
				&cli.BoolFlag{Name: "native", Value: true, Usage: "native sidecar (init container with restartPolicy Always); --native=false for clusters before 1.29"},
				&cli.BoolFlag{Name: "init", Usage: "print plxfs init containers (copy, no FUSE, no privileges) instead of a mount"},
				&cli.BoolFlag{Name: "read-only", Usage: "mount the connections read-only (datasets): writes fail with EROFS, and the kernel reads wholly cached files straight from the cache"},
				&cli.StringFlag{Name: "cache-size", Value: kubernetes.DefaultCacheSize, Usage: "the mount's --cache-size: bound on cached data in the cache emptyDir (node disk, not memory; `SIZE` such as 10GiB)"},
				&cli.StringFlag{Name: "memory", Value: kubernetes.DefaultMemory, Usage: "memory request and limit of plxfs containers (a Kubernetes `QUANTITY`)"},
				&cli.DurationFlag{Name: "grace-period", Value: kubernetes.DefaultGrace, Usage: "the mount's --grace-period (pending uploads after SIGTERM); the pod's terminationGracePeriodSeconds is set 20s above it"},
			},
			Action: kubeSidecar,
		}, kubeCSICommand()},
	})
}

func kubeSidecar(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErrorf("kube sidecar takes no arguments (got %q): select connections with --connections", c.Args().First())
	}
	if c.String("image") == "" {
		return usageErrorf("kube sidecar needs --image IMAGE: the plxfs image built from the Dockerfile, as your cluster pulls it")
	}
	if _, err := parseSize("--cache-size", c.String("cache-size")); err != nil {
		return err
	}
	if g := c.Duration("grace-period"); g < time.Second {
		return usageErrorf("--grace-period %v: use a duration of at least 1s, such as 2m", g)
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
	pod, err := kubernetes.Build(conns, kubernetes.Options{
		Image:         c.String("image"),
		MountPath:     c.String("mount-path"),
		ConfigMapName: c.String("config-map-name"),
		Native:        c.Bool("native"),
		ReadOnly:      c.Bool("read-only"),
		Init:          c.Bool("init"),
		Memory:        c.String("memory"),
		CacheSize:     c.String("cache-size"),
		GracePeriod:   c.Duration("grace-period"),
	})
	if err != nil {
		return err
	}
	for _, w := range pod.Warnings {
		rt.Logger().Warn(w)
	}
	names := make([]string, len(conns))
	for i, conn := range conns {
		names[i] = conn.Name
	}
	from := fmt.Sprintf("%s, connections: %s", cat.Source, strings.Join(names, ", "))
	return pod.WriteYAML(c.App.Writer, from)
}
