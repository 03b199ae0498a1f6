package main

// The storage commands: ls, rm, upload and download, Polyaxon's GCSService from the command
// line. All the moving of bytes is in package transfer; this file turns flags into
// transfer.Options, reports progress and summaries, and picks exit codes (0 all done, 1 some
// failed, 2 usage error).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/control"
	"github.com/plxfs/plxfs/store"
	"github.com/plxfs/plxfs/transfer"
)

// confirmAbove is the number of objects rm -r deletes without asking on a terminal.
const confirmAbove = 10

// staleParts is the age after which anyone's leftover upload parts are removed by upload.
const staleParts = 24 * time.Hour

// storageCommand adds the common flags to a storage command.
func storageCommand(cmd *cli.Command) *cli.Command {
	cmd.Flags = append(cmd.Flags, commonFlags()...)
	return cmd
}

func lsCommand() *cli.Command {
	return storageCommand(&cli.Command{
		Name:      "ls",
		Usage:     "list the directories and files under a remote path",
		ArgsUsage: "REMOTE",
		Description: `REMOTE is CONNECTION:PATH (PATH relative to the connection's prefix) or gs://BUCKET/PATH.
Directories are listed with a trailing slash, then files, names relative to PATH; the
directory's own placeholder object is left out, and only names under PATH/ count (ls data
never shows data2/ or data.csv). A PATH naming one object lists that object.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "show size, modification time and generation"},
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "list everything below PATH"},
			outputFlag(),
		},
		Action: runLs,
	})
}

func rmCommand() *cli.Command {
	return storageCommand(&cli.Command{
		Name:      "rm",
		Usage:     "delete an object, or with -r everything under a remote directory",
		ArgsUsage: "REMOTE",
		Description: `rm CONNECTION:PATH deletes the object PATH. rm -r deletes every object under PATH/ and the
PATH/ placeholder, and nothing else: rm -r conn:data never touches data2/... or data.csv. When
nothing is under PATH/, rm -r deletes the object PATH if it exists. On a terminal, rm -r asks
before deleting more than ` + strconv.Itoa(confirmAbove) + ` objects unless -f is given.`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "delete everything under the directory"},
			&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "do not ask for confirmation"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be deleted and delete nothing"},
			&cli.IntFlag{Name: "workers", Value: transfer.DefaultWorkers, Usage: "deletes in parallel"},
			quietFlag(),
		},
		Action: runRm,
	})
}

// transferFlags are the flags upload and download share.
func transferFlags(verb string) []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "recursive", Aliases: []string{"r"}, Usage: "copy directories and everything below them"},
		&cli.BoolFlag{Name: "no-basename", Usage: "put the contents directly at the destination instead of under its base name (Polyaxon's use_basename=False)"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out files whose relative path or base name matches `GLOB` (repeatable)"},
		&cli.StringFlag{Name: "since", Usage: "only files modified after `TIME` (RFC 3339, 2006-01-02[ 15:04:05], or a duration ago such as 90m, 2h, 7d)"},
		&cli.IntFlag{Name: "workers", Value: transfer.DefaultWorkers, Usage: "`N` requests moving bytes at once (files and parts)"},
		&cli.BoolFlag{Name: "skip-unchanged", Usage: "skip destinations with the same size and CRC32C, replace different ones"},
		&cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace existing destinations without comparing"},
		&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be " + pastTense[verb] + " and " + verb + " nothing"},
		quietFlag(),
	}
}

// uploadFlags are upload's own flags.
func uploadFlags() []cli.Flag {
	return append(transferFlags("upload"),
		&cli.StringFlag{Name: "part-size", Value: "16MiB", Usage: "`SIZE` of the parts of composed uploads"},
		&cli.StringFlag{Name: "compose-threshold", Value: "64MiB", Usage: "files of at least `SIZE` are uploaded as parallel parts joined with compose"},
		&cli.StringFlag{Name: "upload-chunk-size", Value: "2MiB", Usage: "resumable-upload chunk `SIZE`: each of the --workers requests holds one chunk in memory (a multiple of 256KiB)"},
		memoryLimitFlag("Upload buffers take about --workers × --upload-chunk-size."),
	)
}

// downloadFlags are download's own flags.
func downloadFlags() []cli.Flag {
	return append(transferFlags("download"),
		&cli.StringFlag{Name: "part-size", Value: "16MiB", Usage: "`SIZE` of the parallel ranged reads of a big object"},
		&cli.BoolFlag{Name: "raw", Usage: "keep the stored bytes of gzip-encoded objects instead of decompressing them"},
		memoryLimitFlag(""),
		// Upload's flags, which download once listed: still accepted (scripts pass them),
		// hidden from --help, and without effect.
		&cli.StringFlag{Name: "compose-threshold", Hidden: true},
		&cli.StringFlag{Name: "upload-chunk-size", Hidden: true},
	)
}

func uploadCommand() *cli.Command {
	return storageCommand(&cli.Command{
		Name:      "upload",
		Usage:     "copy local files (and with -r directories) to a remote path",
		ArgsUsage: "LOCAL... REMOTE",
		Description: `Each LOCAL lands under REMOTE with its base name: upload ./run1 conn:exp gives exp/run1/...,
upload ./a.csv conn:exp gives exp/a.csv. With --no-basename (one LOCAL only), a file becomes
the object REMOTE itself and a directory's contents go directly under REMOTE.
An existing identical object is skipped; a different one is a failure unless --skip-unchanged
or --force says to replace it. Uploads send CRC32C and carry a generation precondition, so a
retried or concurrent write never clobbers silently.`,
		Flags:  uploadFlags(),
		Action: runUpload,
	})
}

func downloadCommand() *cli.Command {
	return storageCommand(&cli.Command{
		Name:      "download",
		Usage:     "copy a remote object (and with -r a remote directory) to local disk",
		ArgsUsage: "REMOTE LOCAL",
		Description: `LOCAL is the directory to download into: download conn:exp/a.csv ./in gives ./in/a.csv and
download -r conn:exp/run1 ./in gives ./in/run1/.... With --no-basename, LOCAL is the file
itself, or the directory that receives run1's contents.
Files land under a temporary name and are renamed once complete and verified (CRC32C or
MD5), so an interrupted run never leaves a truncated file; re-running skips complete files.
Object names unsafe as local paths ("..", absolute, NUL, empty or over-long segments) and an
object "a" next to objects under "a/" are refused and listed. An existing different local
file is a failure unless --skip-unchanged or --force. Objects stored with Content-Encoding
gzip are decompressed (as GCS serves them to most clients) unless --raw.`,
		Flags:  downloadFlags(),
		Action: runDownload,
	})
}

func quietFlag() cli.Flag {
	return &cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress and no summary"}
}

// --- ls ------------------------------------------------------------------------------------

type lsFile struct {
	Name       string    `json:"name"`
	Size       int64     `json:"size"`
	Updated    time.Time `json:"updated"`
	Generation int64     `json:"generation"`
}

type lsResult struct {
	Dirs  []string `json:"dirs"`
	Files []lsFile `json:"files"`
}

func runLs(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("ls takes one REMOTE (CONNECTION:PATH or gs://BUCKET/PATH), got %d arguments", c.NArg())
	}
	format, err := outputFormat(c)
	if err != nil {
		return err
	}
	ctx := c.Context
	_, r, err := openRemote(c, c.Args().First())
	if err != nil {
		return err
	}
	b, p := r.b, r.path
	dirs, files, err := transfer.List(ctx, b, p, c.Bool("recursive"))
	if err != nil {
		return r.failListing(fmt.Sprintf("listing %q", r.spec), false, err)
	}
	if len(dirs) == 0 && len(files) == 0 && p != "" {
		a, err := b.Stat(ctx, p)
		switch {
		case errors.Is(err, store.ErrNotExist):
			return cli.Exit(fmt.Sprintf("%s: no such object or directory", r.spec), 1)
		case err != nil:
			return r.fail(fmt.Sprintf("looking up %q", r.spec), false, err)
		}
		a.Name = path.Base(p)
		files = []store.Attrs{a}
	}
	res := lsResult{Dirs: dirs, Files: make([]lsFile, len(files))}
	if res.Dirs == nil {
		res.Dirs = []string{}
	}
	for i, a := range files {
		res.Files[i] = lsFile{Name: a.Name, Size: a.Size, Updated: a.Updated.UTC(), Generation: a.Generation}
	}
	w := c.App.Writer
	if format == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	long := c.Bool("long")
	for _, d := range res.Dirs {
		if long {
			fmt.Fprintf(tw, "%s\t%s\t%s\t %s\n", "-", "-", "-", display(d)+"/")
		} else {
			fmt.Fprintln(w, display(d)+"/")
		}
	}
	for _, f := range res.Files {
		if long {
			fmt.Fprintf(tw, "%d\t%s\t%d\t %s\n", f.Size, f.Updated.Format(time.RFC3339), f.Generation, display(f.Name))
		} else {
			fmt.Fprintln(w, display(f.Name))
		}
	}
	return tw.Flush()
}

// display quotes names that would garble a terminal (control characters, invalid UTF-8).
func display(name string) string {
	for _, r := range name {
		if r == unicode.ReplacementChar || unicode.IsControl(r) {
			return strconv.Quote(name)
		}
	}
	return name
}

// --- rm ------------------------------------------------------------------------------------

// openRemote returns the invocation's runtime and the resolved remote argument
// (CONNECTION:PATH or gs://BUCKET/PATH).
func openRemote(c *cli.Context, spec string) (*runtime, *remote, error) {
	rt, err := getRuntime(c)
	if err != nil {
		return nil, nil, err
	}
	r, err := rt.Remote(c.Context, spec)
	return rt, r, err
}

func runRm(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("rm takes one REMOTE (CONNECTION:PATH or gs://BUCKET/PATH), got %d arguments%s", c.NArg(), polyaxonfileHint(c))
	}
	spec := c.Args().First()
	ctx := c.Context
	rt, r, err := openRemote(c, spec)
	if err != nil {
		return err
	}
	rep := newReporter(c, "delete", r)
	opts := transfer.Options{Workers: c.Int("workers"), DryRun: c.Bool("dry-run"), Logger: rt.Logger(), Progress: rep}
	if opts.Workers < 1 {
		return usageErrorf("--workers %d: use 1 or more", opts.Workers)
	}
	if c.Bool("recursive") {
		if !c.Bool("force") && !opts.DryRun && stdinIsTerminal() {
			opts.Confirm = func(files, bytes int64) bool {
				return files <= confirmAbove || confirm(os.Stdin, c.App.ErrWriter,
					fmt.Sprintf("delete %d objects (%s) under %s?", files, humanBytes(bytes), spec))
			}
		}
		s, err := transfer.RemoveTree(ctx, r.b, r.path, opts)
		if errors.Is(err, transfer.ErrAborted) {
			// Declining is an answer, not a failure.
			fmt.Fprintln(c.App.ErrWriter, "nothing deleted")
			return nil
		}
		if err == nil && s.Files+int64(s.Skipped+s.Failed) == 0 && r.path != "" {
			return rmOne(ctx, c, r, rep, opts)
		}
		if s.Files > 0 && !opts.DryRun {
			tellMounts(ctx, rt.Logger(), []control.Change{changeOf(r, r.path, true)})
		}
		return rep.finish(s, r.failListing(fmt.Sprintf("deleting %q", spec), true, err))
	}
	if r.path == "" {
		return usageErrorf("%s names a whole connection or bucket: use rm -r to delete everything in it", spec)
	}
	return rmOne(ctx, c, r, rep, opts)
}

// polyaxonfileHint explains a stray argument after -f: -f is --force, not --polyaxonfile.
func polyaxonfileHint(c *cli.Context) string {
	for _, a := range c.Args().Slice() {
		if strings.HasSuffix(a, ".yaml") || strings.HasSuffix(a, ".yml") || strings.HasSuffix(a, ".json") {
			return fmt.Sprintf(" (%s is not a remote; -f is --force, and a polyaxonfile is given with --polyaxonfile FILE)", a)
		}
	}
	return ""
}

// rmOne deletes the single object r.path.
func rmOne(ctx context.Context, c *cli.Context, r *remote, rep *reporter, opts transfer.Options) error {
	start := time.Now()
	b, p, spec := r.b, r.path, r.spec
	a, err := b.Stat(ctx, p)
	if errors.Is(err, store.ErrNotExist) {
		if !c.Bool("recursive") {
			if dirs, files, lerr := transfer.List(ctx, b, p, false); lerr == nil && len(dirs)+len(files) > 0 {
				return usageErrorf("%s is a directory: use rm -r", spec)
			}
		}
		return cli.Exit(fmt.Sprintf("%s: no such object or directory", spec), 1)
	}
	if err != nil {
		return r.fail(fmt.Sprintf("looking up %q", spec), true, err)
	}
	rep.Total(1, a.Size)
	ev := transfer.Event{Name: a.Name, Size: a.Size, DryRun: opts.DryRun}
	if !opts.DryRun {
		ev.Err = b.Delete(ctx, a.Name, a.Generation)
	}
	rep.Done(ev)
	s := transfer.Summary{Elapsed: time.Since(start)}
	if ev.Err != nil {
		s.Failed, s.Failures = 1, []transfer.Failure{{Name: a.Name, Err: ev.Err}}
	} else {
		s.Files, s.Bytes = 1, a.Size
		if !opts.DryRun {
			tellMounts(ctx, opts.Logger, []control.Change{changeOf(r, p, false)})
		}
	}
	return rep.finish(s, nil)
}

// confirm asks question on out and reads a yes from in.
func confirm(in io.Reader, out io.Writer, question string) bool {
	fmt.Fprintf(out, "%s [y/N] ", question)
	line, _ := bufio.NewReader(in).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}

func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

// --- upload and download -------------------------------------------------------------------

// transferOptions turns the shared flags into transfer.Options.
func transferOptions(c *cli.Context, rt *runtime, rep *reporter) (transfer.Options, error) {
	opts := transfer.Options{
		Workers:       c.Int("workers"),
		Owner:         partsOwner(),
		Progress:      rep,
		Logger:        rt.Logger(),
		Force:         c.Bool("force"),
		SkipUnchanged: c.Bool("skip-unchanged"),
		Exclude:       c.StringSlice("exclude"),
		DryRun:        c.Bool("dry-run"),
		Raw:           c.Bool("raw"),
	}
	if opts.Workers < 1 {
		return opts, usageErrorf("--workers %d: use 1 or more", opts.Workers)
	}
	if opts.Force && opts.SkipUnchanged {
		return opts, usageErrorf("--force and --skip-unchanged contradict each other: pick one")
	}
	if err := transfer.CheckGlobs(opts.Exclude); err != nil {
		return opts, usageErrorf("--exclude: %v", err)
	}
	if s := c.String("since"); s != "" {
		t, err := parseSince(s, time.Now())
		if err != nil {
			return opts, usageError{err.Error()}
		}
		opts.Since = t
	}
	var err error
	if opts.PartSize, err = parseSize("--part-size", c.String("part-size")); err != nil {
		return opts, err
	}
	if c.Command.Name == "download" {
		for _, f := range []string{"compose-threshold", "upload-chunk-size"} {
			if c.IsSet(f) {
				rt.Logger().Warn("--" + f + " is an upload flag; download ignores it")
			}
		}
	} else if hasFlag(c, "compose-threshold") {
		if opts.ComposeThreshold, err = parseSize("--compose-threshold", c.String("compose-threshold")); err != nil {
			return opts, err
		}
	}
	if c.Command.Name != "download" && hasFlag(c, "upload-chunk-size") {
		chunk, err := parseSize("--upload-chunk-size", c.String("upload-chunk-size"))
		if err != nil {
			return opts, err
		}
		if chunk%(256<<10) != 0 || chunk > 1<<30 {
			return opts, usageErrorf("--upload-chunk-size %s: use a multiple of 256KiB up to 1GiB", c.String("upload-chunk-size"))
		}
		opts.ChunkSize = int(chunk)
	}
	return opts, applyMemoryLimit(c)
}

// hasFlag reports whether the command being run defines the flag name.
func hasFlag(c *cli.Context, name string) bool {
	for _, f := range c.Command.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// partsOwner names this process's temporary upload parts.
func partsOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "host"
	}
	return "plxfs-cli-" + host + "-" + strconv.Itoa(os.Getpid())
}

func runUpload(c *cli.Context) error {
	if c.NArg() < 2 {
		return usageErrorf("upload takes LOCAL... REMOTE, got %d arguments", c.NArg())
	}
	args := c.Args().Slice()
	locals, spec := args[:len(args)-1], args[len(args)-1]
	noBase := c.Bool("no-basename")
	if noBase && len(locals) > 1 {
		return usageErrorf("--no-basename takes one LOCAL (several would land on the same names)")
	}
	type job struct {
		local, remote string
		dir           bool
	}
	var jobs []job
	for _, l := range locals {
		fi, err := os.Stat(l)
		if err != nil {
			return usageErrorf("%s: %v", l, errors.Unwrap(err))
		}
		if fi.IsDir() && !c.Bool("recursive") {
			return usageErrorf("%s is a directory: use upload -r", l)
		}
		if !fi.IsDir() && !fi.Mode().IsRegular() {
			return usageErrorf("%s is not a regular file", l)
		}
		jobs = append(jobs, job{local: l, dir: fi.IsDir()})
	}
	ctx := c.Context
	rt, r, err := openRemote(c, spec)
	if err != nil {
		return err
	}
	for i, j := range jobs {
		if noBase {
			if !j.dir && r.path == "" {
				return usageErrorf("--no-basename: %s names no object for the file %s", spec, j.local)
			}
			jobs[i].remote = r.path
			continue
		}
		base, err := localBase(j.local)
		if err != nil {
			return err
		}
		jobs[i].remote = strings.TrimPrefix(r.path+"/"+base, "/")
	}
	rep := newReporter(c, "upload", r)
	opts, err := transferOptions(c, rt, rep)
	if err != nil {
		return err
	}
	if !opts.DryRun {
		if n, err := transfer.CleanupParts(ctx, r.b, "", staleParts); err != nil {
			rt.Logger().Debug("could not clean up stale upload parts", "err", err)
		} else if n > 0 {
			rt.Logger().Info("removed stale temporary upload parts", "objects", n)
		}
	}
	var total transfer.Summary
	var changes []control.Change
	start := time.Now()
	for _, j := range jobs {
		var s transfer.Summary
		if j.dir {
			s, err = transfer.UploadTree(ctx, r.b, j.local, j.remote, opts)
		} else {
			s, err = transfer.UploadFile(ctx, r.b, j.local, j.remote, opts)
		}
		if s.Files > 0 {
			changes = append(changes, changeOf(r, j.remote, j.dir))
		}
		total = addSummary(total, s)
		if err != nil {
			err = r.fail(fmt.Sprintf("uploading %q to %q", j.local, remoteName(r, j.remote)), true, err)
			break
		}
	}
	total.Elapsed = time.Since(start)
	if !opts.DryRun {
		tellMounts(ctx, rt.Logger(), changes)
	}
	return rep.finish(total, err)
}

// remoteName writes the object path p (relative to r's bucket view) as the user would:
// CONNECTION:PATH, or gs://BUCKET/PATH.
func remoteName(r *remote, p string) string {
	if strings.HasPrefix(r.spec, "gs://") || strings.HasPrefix(r.spec, "gcs://") {
		return "gs://" + r.scope.Bucket + "/" + p
	}
	return r.scope.Conn + ":" + p
}

// localBase is the base name a local path contributes to object names.
func localBase(l string) (string, error) {
	abs, err := filepath.Abs(l)
	if err != nil {
		return "", err
	}
	base := filepath.Base(abs)
	if base == "/" || base == "." {
		return "", usageErrorf("%s has no base name: use --no-basename", l)
	}
	return base, nil
}

func runDownload(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageErrorf("download takes REMOTE LOCAL, got %d arguments", c.NArg())
	}
	spec, local := c.Args().Get(0), c.Args().Get(1)
	ctx := c.Context
	rt, r, err := openRemote(c, spec)
	if err != nil {
		return err
	}
	b, p := r.b, r.path
	if !c.Bool("recursive") && p == "" {
		return usageErrorf("%s names a whole connection or bucket: use download -r", spec)
	}
	rep := newReporter(c, "download", r)
	opts, err := transferOptions(c, rt, rep)
	if err != nil {
		return err
	}
	dest := local
	noBase := c.Bool("no-basename")
	if !noBase && p != "" {
		base := path.Base(p)
		if err := connspec.SegmentOK(base); err != nil {
			return cli.Exit(fmt.Sprintf("%s: base name refused: %v", spec, err), 1)
		}
		dest = filepath.Join(local, base)
	}
	// The directory that receives the files must be one (or not exist yet): say so before
	// anything is fetched.
	into := local
	if noBase && !c.Bool("recursive") {
		into = filepath.Dir(local)
	}
	if err := checkTargetDir(into); err != nil {
		return err
	}
	doing := fmt.Sprintf("downloading %q to %q", spec, local)
	if c.Bool("recursive") {
		s, err := transfer.DownloadTree(ctx, b, p, dest, opts)
		if err != nil || s.Files+int64(s.Skipped+s.Failed) > 0 || p == "" {
			return rep.finish(s, r.failListing(doing, false, err))
		}
		// Nothing under PATH/: PATH may be a single object.
	}
	s, err := transfer.DownloadFile(ctx, b, p, dest, opts)
	if errors.Is(err, store.ErrNotExist) {
		if !c.Bool("recursive") {
			if dirs, files, lerr := transfer.List(ctx, b, p, false); lerr == nil && len(dirs)+len(files) > 0 {
				return usageErrorf("%s is a directory: use download -r", spec)
			}
		}
		return cli.Exit(fmt.Sprintf("%s: no such object or directory", spec), 1)
	}
	return rep.finish(s, r.fail(doing, false, err))
}

// checkTargetDir refuses a download target that is not a directory: dir itself, or the
// nearest of its parents that exists.
func checkTargetDir(dir string) error {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			if !fi.IsDir() {
				return usageErrorf("%s is a file, not a directory: give a directory to download into (or --no-basename to name the file itself)", p)
			}
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
			return usageErrorf("%s: %v", p, errors.Unwrap(err))
		}
		if parent := filepath.Dir(p); parent == p {
			return nil
		}
	}
}

func addSummary(a, b transfer.Summary) transfer.Summary {
	a.Files += b.Files
	a.Bytes += b.Bytes
	a.Skipped += b.Skipped
	a.Failed += b.Failed
	a.Failures = append(a.Failures, b.Failures...)
	return a
}

// --- progress and summaries ----------------------------------------------------------------

// reporter is the commands' transfer.Progress: a progress bar on a terminal (files, bytes,
// rate, time left, and the compose step of composed uploads), nothing while running
// otherwise, and a final summary line unless --quiet. Dry-run lines ("would upload NAME") go
// to stdout, sorted, whatever the mode: they are the output. The bar stops short of 100%
// until the last file is done (verified, renamed or composed), however many bytes have moved.
//
// The text after the bar is ours (statusLocked), redrawn every refreshEvery: the library's
// own rate starts its clock at the first update, so a first update of a whole 16 MiB part
// showed TiB/s.
type reporter struct {
	verb   string // "upload", "download", "delete", "warm"
	out    io.Writer
	err    io.Writer
	quiet  bool
	dryRun bool
	width  int     // terminal columns, when on a terminal
	remote *remote // explains per-file failures; nil: their own text

	totalFiles, doneFiles atomic.Int64

	mu        sync.Mutex               // guards the fields below
	bar       *progressbar.ProgressBar // nil unless on a terminal
	tty       bool
	start     time.Time      // when the bar appeared: the rate's clock
	moved     int64          // bytes moved or skipped so far (the bar)
	sent      int64          // bytes moved so far (the rate)
	max       int64          // bytes announced
	composing map[string]int // composed uploads joining their parts: object → parts
	stop      chan struct{}  // closed by finish: ends the redraws
	wouldDo   []string       // dry-run names, printed sorted by finish
}

const (
	// refreshEvery is how often the text after the bar is redrawn.
	refreshEvery = 200 * time.Millisecond
	// minRateTime is how long a transfer runs before its rate and time left are shown: over
	// a few milliseconds, the bytes of one request or part say nothing about the rate.
	minRateTime = time.Second
)

func newReporter(c *cli.Context, verb string, r *remote) *reporter {
	rep := &reporter{verb: verb, out: c.App.Writer, err: c.App.ErrWriter, quiet: c.Bool("quiet"), dryRun: c.Bool("dry-run"), remote: r}
	if f, ok := rep.err.(*os.File); ok && !rep.quiet && !rep.dryRun && verb != "delete" {
		rep.tty = term.IsTerminal(int(f.Fd()))
		rep.width, _, _ = term.GetSize(int(f.Fd()))
	}
	return rep
}

func (r *reporter) Total(files, bytes int64) {
	r.totalFiles.Add(files)
	if !r.tty {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.max += bytes
	if r.bar == nil {
		r.start = time.Now()
		r.bar = progressbar.NewOptions64(max(r.max, 1),
			progressbar.OptionSetWriter(r.err),
			progressbar.OptionSetPredictTime(false), // rate and time left: statusLocked
			progressbar.OptionShowDescriptionAtLineEnd(),
			progressbar.OptionSetWidth(max(10, min(40, r.width-80))),
			progressbar.OptionSetDescription(r.statusLocked(r.start)),
		)
		_ = r.bar.RenderBlank()
		r.stop = make(chan struct{})
		go r.redraw(r.stop)
		return
	}
	r.bar.ChangeMax64(max(r.max, 1))
}

// redraw refreshes the text after the bar until stop is closed.
func (r *reporter) redraw(stop chan struct{}) {
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			r.mu.Lock()
			select {
			case <-stop: // finish ran meanwhile: the bar's line is final
			default:
				r.bar.Describe(r.statusLocked(now))
			}
			r.mu.Unlock()
		}
	}
}

// statusLocked is the text after the bar at now: files done, bytes, then the rate and time
// left while bytes remain (once minRateTime has passed), and the compose step of the
// composed uploads joining their parts. Skipped files move the bar, not the rate. A zero now
// is the final text, without a rate: the summary line gives it.
func (r *reporter) statusLocked(now time.Time) string {
	st := fmt.Sprintf("%d/%d files, %s of %s", r.doneFiles.Load(), r.totalFiles.Load(), humanBytes(min(r.moved, r.max)), humanBytes(r.max))
	if rate, ok := rateOf(r.sent, now.Sub(r.start)); ok && !now.IsZero() && r.moved < r.max {
		left := time.Duration(float64(r.max-r.moved) / rate * float64(time.Second))
		st += fmt.Sprintf(", %s/s, %s left", humanBytes(int64(rate)), left.Round(time.Second))
	}
	parts := 0
	for _, n := range r.composing {
		parts += n
	}
	switch len(r.composing) {
	case 0:
	case 1:
		st += fmt.Sprintf(", composing %d parts", parts)
	default:
		st += fmt.Sprintf(", composing %d files (%d parts)", len(r.composing), parts)
	}
	return st
}

// rateOf is the rate to show for sent bytes over elapsed, in bytes per second; false before
// minRateTime has passed or before any byte moved.
func rateOf(sent int64, elapsed time.Duration) (float64, bool) {
	if elapsed < minRateTime || sent <= 0 {
		return 0, false
	}
	return float64(sent) / elapsed.Seconds(), true
}

// showLocked moves the bar to the bytes moved, below 100% while files are outstanding.
func (r *reporter) showLocked() {
	if r.bar == nil {
		return
	}
	v := r.moved
	if r.doneFiles.Load() < r.totalFiles.Load() {
		v = min(v, r.max-1)
	} else {
		v = r.max
	}
	_ = r.bar.Set64(max(v, 0))
}

func (r *reporter) Bytes(n int64) {
	if !r.tty {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.moved += n
	r.sent += n
	r.showLocked()
}

// Composing shows the compose step of name's upload at once: its bytes are all sent, and the
// bar would otherwise sit still for the seconds the compose takes.
func (r *reporter) Composing(name string, parts int) {
	if !r.tty {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.composing == nil {
		r.composing = map[string]int{}
	}
	r.composing[name] = parts
	if r.bar != nil {
		r.bar.Describe(r.statusLocked(time.Now()))
	}
}

func (r *reporter) Done(ev transfer.Event) {
	r.doneFiles.Add(1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.DryRun {
		r.wouldDo = append(r.wouldDo, ev.Name)
	}
	if ev.Skipped {
		r.moved += ev.Size
	}
	delete(r.composing, ev.Name)
	r.showLocked() // the text follows with the next redraw
}

// failureLine is one failed file: its name, then (for storage errors) the cause in a few
// words and, the first time a kind of cause is seen, what to do.
func (r *reporter) failureLine(f transfer.Failure, advised map[errKind]bool) string {
	var ue *userError
	if errors.As(f.Err, &ue) {
		return "plxfs: " + ue.Error()
	}
	if r.remote == nil {
		return fmt.Sprintf("plxfs: %s: %s", display(f.Name), shortCause(f.Err))
	}
	c := classify(f.Err)
	cause, advice := explain(c, r.scope(), f.Err)
	if advice == "" || advised[c.kind] || c.kind == kindUnknown {
		return fmt.Sprintf("plxfs: %s: %s", display(f.Name), cause)
	}
	advised[c.kind] = true
	return fmt.Sprintf("plxfs: %s: %s; %s", display(f.Name), cause, advice)
}

func (r *reporter) scope() errScope {
	s := r.remote.scope
	s.Write = r.verb == "upload" || r.verb == "delete"
	return s
}

// finish prints the summary and failures and turns them into the exit code. A run stopped
// by err prints no "0 failed" summary: it says what was done before it stopped, if anything.
func (r *reporter) finish(s transfer.Summary, err error) error {
	r.mu.Lock()
	if r.stop != nil {
		close(r.stop)
		r.stop = nil
	}
	if r.bar != nil {
		clear(r.composing)
		r.bar.Describe(r.statusLocked(time.Time{}))
		if err == nil {
			_ = r.bar.Finish()
		}
		fmt.Fprintln(r.err)
	}
	slices.Sort(r.wouldDo)
	for _, n := range r.wouldDo {
		fmt.Fprintf(r.out, "would %s %s\n", r.verb, display(n))
	}
	r.mu.Unlock()
	advised := map[errKind]bool{}
	for _, f := range s.Failures {
		fmt.Fprintln(r.err, r.failureLine(f, advised))
	}
	switch {
	case !r.quiet && err == nil:
		fmt.Fprintln(r.err, summaryLine(r.verb, r.dryRun, s))
	case !r.quiet && s.Files > 0:
		fmt.Fprintf(r.err, "%s %d files, %s before stopping\n", pastTense[r.verb], s.Files, humanBytes(s.Bytes))
	}
	switch {
	case errors.Is(err, context.Canceled):
		return cli.Exit("interrupted", 1)
	case err != nil:
		return err
	case s.Failed > 0:
		msg := fmt.Sprintf("%d of %d failed", s.Failed, s.Files+int64(s.Skipped+s.Failed))
		if r.remote != nil {
			msg = fmt.Sprintf("connection %q: %s", r.remote.scope.Conn, msg)
		}
		return cli.Exit(msg, 1)
	}
	return nil
}

var pastTense = map[string]string{"upload": "uploaded", "download": "downloaded", "delete": "deleted", "warm": "warmed"}

// summaryLine: "downloaded 1000 files, 209.7 MiB in 4.2s (49.9 MiB/s), 3 skipped, 0 failed";
// for a dry run, "would download 1000 files, 209.7 MiB, 3 skipped, 0 failed".
func summaryLine(verb string, dryRun bool, s transfer.Summary) string {
	noun := "files"
	if verb == "delete" {
		noun = "objects"
	}
	if dryRun {
		return fmt.Sprintf("would %s %d %s, %s, %d skipped, %d failed", verb, s.Files, noun, humanBytes(s.Bytes), s.Skipped, s.Failed)
	}
	secs := s.Elapsed.Seconds()
	rate := ""
	if verb != "delete" && secs > 0 {
		rate = fmt.Sprintf(" (%s/s)", humanBytes(int64(float64(s.Bytes)/secs)))
	}
	return fmt.Sprintf("%s %d %s, %s in %s%s, %d skipped, %d failed",
		pastTense[verb], s.Files, noun, humanBytes(s.Bytes), s.Elapsed.Round(time.Millisecond), rate, s.Skipped, s.Failed)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// --- flag values ---------------------------------------------------------------------------

// parseSince reads --since: an RFC 3339 time, a date or date-time in UTC, or a duration ago.
func parseSince(s string, now time.Time) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseFloat(d, 64); err == nil && n >= 0 {
			return now.Add(-time.Duration(n * 24 * float64(time.Hour))), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: use an RFC 3339 time (2024-05-01T12:00:00Z), a date (2024-05-01), or a duration ago (90m, 2h, 7d)", s)
}

// parseSize reads sizes such as 16MiB, 64M, 1GiB, 262144.
func parseSize(flag, s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}} {
		if v, ok := strings.CutSuffix(t, u.suffix); ok {
			t, mult = strings.TrimSpace(v), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, usageErrorf("%s %q: use a positive size such as 16MiB, 64M or 262144", flag, s)
	}
	return n * mult, nil
}
