package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/emulator"
)

const demoBucket = "plxfs-demo"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "mount a demo dataset, or your own connections, from an embedded GCS emulator (no cloud, no credentials)",
		ArgsUsage: "MOUNTPOINT",
		Description: `demo starts fake-gcs-server inside this process and mounts connections from it at
MOUNTPOINT exactly as 'plxfs mount' would. Ctrl-C unmounts and stops everything.

Without --config it seeds the bucket gs://plxfs-demo with a small generated dataset (a few
hundred files in nested folders and one large file) and mounts two connections on two
prefixes of it ("dataset" and "outputs").

With --config FILE it uses your own connections file instead: it creates every bucket the
file's gcs connections name, empty (--sample puts a README.md and a small CSV under each
connection's prefix), and mounts those connections. While it runs, every other command works
on the same file against the emulator, with the --endpoint the demo prints:

   plxfs demo --config conns.yaml --keep ~/.cache/plxfs-demo /tmp/plx
   plxfs ls --config conns.yaml --endpoint http://127.0.0.1:PORT gcs-dataset1:
   plxfs upload -r ./data --config conns.yaml --endpoint http://127.0.0.1:PORT gcs-dataset1:

Credentials are not used against an emulator, so the secrets your connections name need not
exist. The emulator's data is discarded when demo exits, unless --keep DIR keeps it (and the
mount's cache) in DIR: the next 'plxfs demo --keep DIR' finds the same objects again.

Your own fake-gcs-server works too: run it with the filesystem backend and the public host and
external URL it is reached at (for XML reads and resumable uploads), create the buckets, and
give every command --endpoint (or $STORAGE_EMULATOR_HOST):

   fake-gcs-server -scheme http -port 4443 -backend filesystem -filesystem-root ./gcs \
     -public-host 127.0.0.1:4443 -external-url http://127.0.0.1:4443
   plxfs mount --config conns.yaml --endpoint http://127.0.0.1:4443 /tmp/plx`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "config", Usage: "your connections `FILE`: create the buckets it names and mount its gcs connections instead of the generated dataset"},
			&cli.BoolFlag{Name: "sample", Usage: "with --config, put a README.md and a small CSV under each connection's prefix (only where it holds nothing yet)"},
			&cli.StringFlag{Name: "keep", Usage: "keep the emulator's data (and the mount's cache) in `DIR` across runs; default: discard them on exit"},
			&cli.IntFlag{Name: "files", Value: 300, Usage: "without --config: how many small files to generate"},
			&cli.Int64Flag{Name: "large-mib", Value: 64, Usage: "without --config: size of the large file in MiB"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("demo takes one MOUNTPOINT")
			}
			return runDemo(c, c.Args().First())
		},
	}
}

// localFlag is a flag's value when it was given to this command itself (not the app's
// global flag of the same name, nor an environment variable).
func localFlag(c *cli.Context, name string) string {
	if isSetLocally(c, name) {
		return c.String(name)
	}
	return ""
}

func runDemo(c *cli.Context, mnt string) error {
	keepRunningOnClosedOutput()
	config, keep := localFlag(c, "config"), c.String("keep")
	if config == "" && c.Bool("sample") {
		return usageErrorf("--sample goes with --config FILE (the generated dataset is always seeded)")
	}
	var conns []connspec.Connection
	if config != "" {
		cat, err := connspec.Load(connspec.LoadOptions{ConfigFile: config, LookupEnv: func(string) (string, bool) { return "", false }, ReadFile: os.ReadFile})
		if err != nil {
			return usageError{err.Error()}
		}
		if conns, err = cat.Select(nil); err != nil {
			return usageError{err.Error()}
		}
	}
	work, err := os.MkdirTemp("", "plxfs-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	opts := emulator.Options{Backend: "filesystem"}
	cacheDir := filepath.Join(work, "cache")
	if keep != "" {
		if keep, err = filepath.Abs(keep); err != nil {
			return usageErrorf("--keep %q: %v", c.String("keep"), err)
		}
		opts.Root, cacheDir = filepath.Join(keep, "emulator"), filepath.Join(keep, "cache")
		if err := os.MkdirAll(opts.Root, 0o755); err != nil {
			return fmt.Errorf("--keep %s: %w", keep, err)
		}
	}
	srv, err := emulator.Start(opts)
	if err != nil {
		return fmt.Errorf("starting the embedded emulator: %w", err)
	}
	defer srv.Stop()
	defer func() {
		if keep != "" {
			fmt.Fprintf(c.App.ErrWriter, "demo: the emulator's data is kept in %s; 'plxfs demo --keep %s ...' uses it again\n", opts.Root, keep)
		} else {
			fmt.Fprintln(c.App.ErrWriter, "demo: the demo data was discarded (--keep DIR keeps it)")
		}
	}()
	errw := c.App.ErrWriter
	if config == "" {
		if err := srv.CreateBucket(demoBucket); err != nil {
			return err
		}
		if names, _ := srv.ObjectNames(demoBucket, "datasets/"); len(names) > 0 {
			fmt.Fprintf(errw, "demo: emulator at %s; gs://%s is already seeded (%s)\n", srv.URL(), demoBucket, keep)
		} else {
			fmt.Fprintf(errw, "demo: emulator at %s; seeding gs://%s ...\n", srv.URL(), demoBucket)
			if err := seedDemo(srv, c.Int("files"), c.Int64("large-mib")); err != nil {
				return fmt.Errorf("seeding the demo bucket: %w", err)
			}
		}
		config = filepath.Join(work, "connections.yaml")
		if err := os.WriteFile(config, []byte(demoConnections), 0o644); err != nil {
			return err
		}
	} else {
		var names []string
		for _, conn := range conns {
			if err := srv.CreateBucket(conn.Bucket); err != nil {
				return err
			}
			if c.Bool("sample") {
				if err := seedSample(srv, conn); err != nil {
					return fmt.Errorf("connection %q: seeding a sample: %w", conn.Name, err)
				}
			}
			names = append(names, conn.Name+" ("+conn.URL()+")")
		}
		fmt.Fprintf(errw, "demo: emulator at %s with the buckets of %s: %s\n", srv.URL(), config, strings.Join(names, ", "))
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	first := "dataset"
	if len(conns) > 0 {
		first = conns[0].Name
	}
	fmt.Fprintf(errw, `demo: mounting at %[1]s. Try, in another terminal:
  ls %[1]s
  ls -l %[1]s/%[5]s
  %[2]s ls --config %[3]s --endpoint %[4]s %[5]s:
  %[2]s upload -r ./some-dir --config %[3]s --endpoint %[4]s %[5]s:
Ctrl-C unmounts.
`, mnt, selfCommand(), config, srv.URL(), first)
	args := []string{"plxfs", "mount", "--config", config, "--endpoint", srv.URL(),
		"--cache-dir", cacheDir,
		"--log-level", flagValue(c, "log-level", (*cli.Context).String),
		"--log-format", flagValue(c, "log-format", (*cli.Context).String), mnt}
	sub := newApp()
	sub.Writer, sub.ErrWriter = c.App.Writer, c.App.ErrWriter
	rts := &runtimes{stderr: os.Stderr}
	defer rts.close()
	sub.Metadata = map[string]any{runtimesKey: rts}
	return sub.RunContext(c.Context, args)
}

// seedSample puts a README.md and a small CSV under conn's prefix, unless something is there.
func seedSample(srv *emulator.Server, conn connspec.Connection) error {
	prefix := ""
	if conn.Prefix != "" {
		prefix = strings.Trim(conn.Prefix, "/") + "/"
	}
	if names, err := srv.ObjectNames(conn.Bucket, prefix); err == nil && len(names) > 0 {
		return nil
	}
	files := map[string]string{
		"README.md":         "# " + conn.Name + "\nA sample object written by plxfs demo --sample.\n",
		"sample/labels.csv": "path,label\na.png,0\nb.png,1\n",
	}
	for name, data := range files {
		if err := srv.PutObject(conn.Bucket, prefix+name, []byte(data), ""); err != nil {
			return err
		}
	}
	return nil
}

const demoConnections = `# Written by plxfs demo: two connections on two prefixes of one bucket.
connections:
- name: dataset
  kind: gcs
  description: a generated image-classification-shaped dataset
  schema: {bucket: "gs://plxfs-demo/datasets/shapes"}
- name: outputs
  kind: gcs
  description: where a job writes its checkpoints and logs
  schema: {bucket: "gs://plxfs-demo/outputs"}
`

// seedDemo writes the demo dataset: train/ and val/ class folders of small files, a labels
// CSV, a README, one large file and a first output.
func seedDemo(srv *emulator.Server, files int, largeMiB int64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	var labels strings.Builder
	labels.WriteString("path,label\n")
	for i := 0; i < files; i++ {
		split := "train"
		if i%5 == 4 {
			split = "val"
		}
		class := i % 6
		name := fmt.Sprintf("%s/class%d/img%04d.bin", split, class, i)
		data := make([]byte, 1024+rng.IntN(31*1024))
		for j := range data {
			data[j] = byte(rng.UintN(256))
		}
		if err := srv.PutObject(demoBucket, "datasets/shapes/"+name, data, ""); err != nil {
			return err
		}
		fmt.Fprintf(&labels, "%s,%d\n", name, class)
	}
	large := make([]byte, largeMiB<<20)
	for j := 0; j < len(large); j += 8 {
		v := rng.Uint64()
		for k := 0; k < 8 && j+k < len(large); k++ {
			large[j+k] = byte(v >> (8 * k))
		}
	}
	seeds := map[string][]byte{
		"datasets/shapes/labels.csv":        []byte(labels.String()),
		"datasets/shapes/README.md":         []byte("# shapes\nA generated dataset for the plxfs demo.\n"),
		"datasets/shapes/large/weights.bin": large,
		"outputs/run-0/metrics.json":        []byte(`{"loss": 0.42, "accuracy": 0.87}` + "\n"),
	}
	for name, data := range seeds {
		if err := srv.PutObject(demoBucket, name, data, ""); err != nil {
			return err
		}
	}
	return nil
}

// selfCommand is how to run this plxfs from any directory: "plxfs" when that is what $PATH
// finds, else the executable's absolute path (os.Args[0] may be relative: bin/plxfs).
func selfCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "plxfs"
	}
	if onPath, err := exec.LookPath("plxfs"); err == nil {
		a, errA := os.Stat(onPath)
		b, errB := os.Stat(exe)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "plxfs"
		}
	}
	return exe
}
