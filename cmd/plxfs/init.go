package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

func initCommand() *cli.Command {
	flags := []cli.Flag{
		&cli.StringFlag{Name: "connection", Usage: "`NAME` of the connection to copy from"},
		&cli.StringSliceFlag{Name: "dirs", Usage: "directories to copy, relative to the connection (`DIR` or FROM:TO; repeatable, comma separated)"},
		&cli.StringSliceFlag{Name: "files", Usage: "files to copy, relative to the connection (`FILE` or FROM:TO; repeatable, comma separated)"},
		&cli.StringFlag{Name: "path", Usage: "destination `DIR` (default ${POLYAXON_CONTEXT_ROOT:-/plx-context}/artifacts/CONNECTION)"},
		&cli.BoolFlag{Name: "ignore-errors", Usage: "warn about failures and exit 0, as Polyaxon's initializer does"},
		&cli.IntFlag{Name: "workers", Value: transfer.DefaultWorkers, Usage: "`N` requests moving bytes at once"},
		quietFlag(),
		memoryLimitFlag(""),
	}
	return storageCommand(&cli.Command{
		Name:  "init",
		Usage: "preload data from a connection into the job's context (Polyaxon's artifacts initializer)",
		Description: `init copies directories and files of one connection to local disk before a job starts:

   plxfs init --connection gcs-dataset1 --dirs train,val --files labels.csv
   plxfs init --polyaxonfile polyaxonfile.yaml        # every "artifacts" entry of run.init

The destination is --path (or the init entry's path), else
${POLYAXON_CONTEXT_ROOT:-/plx-context}/artifacts/CONNECTION. A directory or file lands at its
own path below the destination, or at TO for a FROM:TO pair ([from, to] in a polyaxonfile).
No dirs and no files means the whole connection. Entries are always relative to the
connection: a leading "/" does not make them host paths.

Downloads are parallel and verified, and re-running skips files that are already complete.
Unlike Polyaxon, a failure (a missing object, say) exits 1; --ignore-errors restores
Polyaxon's behaviour of warning and going on.`,
		Flags:  flags,
		Action: runInit,
	})
}

// initJob is one artifacts entry to run.
type initJob struct {
	connection string
	dirs       []connspec.PathPair
	files      []connspec.PathPair
	dest       string // "" for the default
}

func runInit(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageErrorf("init takes no arguments (got %q): use --connection, --dirs, --files", c.Args().First())
	}
	rt, err := getRuntime(c)
	if err != nil {
		return err
	}
	var jobs []initJob
	switch {
	case c.String("connection") != "":
		job := initJob{connection: c.String("connection"), dest: c.String("path")}
		job.dirs = parsePairs(c.StringSlice("dirs"))
		job.files = parsePairs(c.StringSlice("files"))
		jobs = append(jobs, job)
	case rt.pfile != "":
		pf, err := rt.Polyaxonfile()
		if err != nil {
			return err
		}
		for _, in := range pf.Init {
			if in.Connection == "" {
				return fmt.Errorf("%s: an artifacts init entry without a connection uses Polyaxon's artifacts store, which plxfs does not know: add connection: NAME", in.Pos)
			}
			dest := in.Path
			if c.String("path") != "" {
				dest = c.String("path")
			}
			jobs = append(jobs, initJob{connection: in.Connection, dirs: in.Dirs, files: in.Files, dest: dest})
		}
		if len(jobs) == 0 {
			fmt.Fprintf(c.App.ErrWriter, "plxfs: %s has no artifacts entries in run.init: nothing to do\n", rt.pfile)
			return nil
		}
	default:
		return usageErrorf("init needs --connection NAME or --polyaxonfile FILE")
	}

	// Every entry's connection must exist before anything is copied: a wrong name is the
	// caller's words being off (exit 2), with or without --ignore-errors.
	for _, job := range jobs {
		if _, err := rt.Connection(job.connection); err != nil {
			return err
		}
	}
	rep := newReporter(c, "download", nil)
	opts := transfer.Options{Workers: c.Int("workers"), Progress: rep, Logger: rt.Logger()}
	if opts.Workers < 1 {
		return usageErrorf("--workers %d: use 1 or more", opts.Workers)
	}
	if err := applyMemoryLimit(c); err != nil {
		return err
	}
	var total transfer.Summary
	for _, job := range jobs {
		s, err := runInitJob(c, rt, job, opts)
		total = addSummary(total, s)
		total.Elapsed += s.Elapsed
		if err != nil {
			total.Failed++
			total.Failures = append(total.Failures, transfer.Failure{Name: job.connection, Err: err})
		}
	}
	if errors.Is(c.Context.Err(), context.Canceled) {
		return rep.finish(total, c.Context.Err())
	}
	if c.Bool("ignore-errors") && total.Failed > 0 {
		for _, f := range total.Failures {
			rt.Logger().Warn("init: not copied (--ignore-errors)", "object", f.Name, "err", f.Err)
		}
		n := total.Failed
		total.Failures, total.Failed = nil, 0
		err := rep.finish(total, nil)
		fmt.Fprintf(c.App.ErrWriter, "plxfs: %d failures ignored (--ignore-errors)\n", n)
		return err
	}
	return rep.finish(total, nil)
}

// parsePairs turns "a", "from:to" (and comma-separated lists of them) into path pairs.
func parsePairs(vals []string) []connspec.PathPair {
	var out []connspec.PathPair
	for _, v := range vals {
		for _, item := range strings.Split(v, ",") {
			if item = strings.TrimSpace(item); item == "" {
				continue
			}
			from, to, _ := strings.Cut(item, ":")
			out = append(out, connspec.PathPair{From: from, To: to})
		}
	}
	return out
}

// runInitJob copies one entry's dirs and files into its destination.
func runInitJob(c *cli.Context, rt *runtime, job initJob, opts transfer.Options) (transfer.Summary, error) {
	conn, err := rt.Connection(job.connection)
	if err != nil {
		return transfer.Summary{}, err
	}
	ctx := c.Context
	whole, err := rt.Bucket(ctx, conn)
	if err != nil {
		return transfer.Summary{}, err
	}
	scope := rt.scope(conn)
	b := store.WithPrefix(whole, conn.Prefix)
	dest := job.dest
	if dest == "" {
		root := os.Getenv("POLYAXON_CONTEXT_ROOT")
		if root == "" {
			root = "/plx-context"
		}
		dest = filepath.Join(root, "artifacts", conn.Name)
	}
	if len(job.dirs) == 0 && len(job.files) == 0 {
		s, err := transfer.DownloadTree(ctx, b, "", dest, opts)
		return s, explainError(scope, fmt.Sprintf("copying %q into %q", conn.Name+":", dest), err)
	}
	var total transfer.Summary
	copyEntry := func(p connspec.PathPair, dir bool) {
		from, local, err := initPaths(dest, p)
		if err == nil {
			var s transfer.Summary
			if dir {
				s, err = transfer.DownloadTree(ctx, b, from, local, opts)
				if err == nil && s.Files+int64(s.Skipped+s.Failed) == 0 {
					err = errors.New("no objects below this directory") // the failure line names it
				}
			} else {
				s, err = transfer.DownloadFile(ctx, b, from, local, opts)
				if errors.Is(err, store.ErrNotExist) {
					err = errors.New("no such object") // the failure line names it
				}
			}
			if err != nil && classify(err).kind != kindUnknown {
				err = explainError(scope, fmt.Sprintf("copying %q to %q", conn.Name+":"+from, local), err)
			}
			// Failures of single files inside a directory: explained the same way.
			for i, f := range s.Failures {
				if classify(f.Err).kind != kindUnknown {
					s.Failures[i].Err = explainError(scope, fmt.Sprintf("copying %q", conn.Name+":"+f.Name), f.Err)
				}
			}
			total = addSummary(total, s)
			total.Elapsed += s.Elapsed
		}
		if err != nil {
			total.Failed++
			total.Failures = append(total.Failures, transfer.Failure{Name: conn.Name + ":" + p.From, Err: err})
		}
	}
	for _, d := range job.dirs {
		copyEntry(d, true)
	}
	for _, f := range job.files {
		copyEntry(f, false)
	}
	return total, nil
}

// initPaths maps an entry to its object path (relative to the connection; a leading "/" is
// not a host path) and its local destination (never outside dest).
func initPaths(dest string, p connspec.PathPair) (from, local string, err error) {
	from = strings.Trim(path.Clean("/"+p.From), "/")
	if from == "" {
		return "", "", fmt.Errorf("%q names the connection root: leave dirs and files empty to copy the whole connection", p.From)
	}
	to := p.To
	if to == "" {
		to = from
	}
	rel, err := connspec.NameToPath(strings.Trim(path.Clean("/"+to), "/"))
	if err != nil {
		return "", "", fmt.Errorf("destination %q: %w", to, err)
	}
	if local, err = connspec.SafeJoin(dest, rel); err != nil {
		return "", "", err
	}
	return from, local, noSymlinkBetween(dest, rel)
}

// noSymlinkBetween refuses a destination whose path below root passes through an existing
// symlink: such a link could lead the copy out of root. (The copy itself writes through
// os.Root, which refuses links that escape the directory it is given.)
func noSymlinkBetween(root, rel string) error {
	p := root
	for _, seg := range strings.Split(filepath.ToSlash(rel), "/") {
		p = filepath.Join(p, seg)
		fi, err := os.Lstat(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link: plxfs init does not write through links in its destination", p)
		}
	}
	return nil
}
