package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/internal/emulator"
)

const demoBucket = "plxfs-demo"

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "mount a generated demo dataset from an embedded GCS emulator (no cloud, no credentials)",
		ArgsUsage: "MOUNTPOINT",
		Description: `demo starts fake-gcs-server inside this process, seeds the bucket gs://plxfs-demo with a
small generated dataset (a few hundred files in nested folders and one large file), writes a
connections file for two connections (two prefixes of that bucket), and mounts them at
MOUNTPOINT exactly as 'plxfs mount' would. Ctrl-C unmounts and stops everything.`,
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "files", Value: 300, Usage: "how many small files to generate"},
			&cli.Int64Flag{Name: "large-mib", Value: 64, Usage: "size of the large file in MiB"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("demo takes one MOUNTPOINT")
			}
			return runDemo(c, c.Args().First(), c.Int("files"), c.Int64("large-mib"))
		},
	}
}

func runDemo(c *cli.Context, mnt string, files int, largeMiB int64) error {
	work, err := os.MkdirTemp("", "plxfs-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	srv, err := emulator.Start(emulator.Options{Backend: "filesystem", Buckets: []string{demoBucket}})
	if err != nil {
		return fmt.Errorf("starting the embedded emulator: %w", err)
	}
	defer srv.Stop()
	fmt.Fprintf(c.App.ErrWriter, "demo: emulator at %s; seeding gs://%s ...\n", srv.URL(), demoBucket)
	if err := seedDemo(srv, files, largeMiB); err != nil {
		return fmt.Errorf("seeding the demo bucket: %w", err)
	}
	conf := filepath.Join(work, "connections.yaml")
	if err := os.WriteFile(conf, []byte(demoConnections), 0o644); err != nil {
		return err
	}
	if err := os.MkdirAll(mnt, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(c.App.ErrWriter, `demo: mounting two connections at %[1]s. Try, in another terminal:
  ls %[1]s                                   # dataset  outputs
  ls -l %[1]s/dataset/train/class0 | head
  sha256sum %[1]s/dataset/large/weights.bin  # 1st read from the emulator, 2nd from the cache
  cp /etc/hostname %[1]s/outputs/ && ls -l %[1]s/outputs
  %[2]s ls --config %[3]s --endpoint %[4]s dataset:
Ctrl-C unmounts.
`, mnt, os.Args[0], conf, srv.URL())
	args := []string{"plxfs", "mount", "--config", conf, "--endpoint", srv.URL(),
		"--cache-dir", filepath.Join(work, "cache"),
		"--log-level", flagValue(c, "log-level", (*cli.Context).String),
		"--log-format", flagValue(c, "log-format", (*cli.Context).String), mnt}
	sub := newApp()
	sub.Writer, sub.ErrWriter = c.App.Writer, c.App.ErrWriter
	rts := &runtimes{stderr: os.Stderr}
	defer rts.close()
	sub.Metadata = map[string]any{runtimesKey: rts}
	return sub.RunContext(c.Context, args)
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
