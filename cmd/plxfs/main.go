// Command plxfs mounts Polyaxon GCS connections as a FUSE filesystem and moves data between
// them and local disk. See README.md and SEMANTICS.md; `plxfs --help` is the manual's first page.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is set at build time with -ldflags "-X main.version=..." (the Makefile and the
// Dockerfile do); a plain `go build` leaves it empty and buildVersion reads the module's
// version or VCS stamp instead.
var version = ""

func main() {
	sigs := []os.Signal{os.Interrupt, syscall.SIGTERM}
	// A closed terminal stops a foreground daemon as Ctrl-C does, unmounting and cleaning up
	// (under nohup SIGHUP stays ignored: Notify would undo that).
	if !signal.Ignored(syscall.SIGHUP) {
		sigs = append(sigs, syscall.SIGHUP)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

const manual = `plxfs mounts Polyaxon-style Google Cloud Storage connections as one FUSE filesystem
and copies data between them and local disk.

A connection is a named bucket plus an optional prefix, written as Polyaxon writes it:

   connections:                       # "persistence:" is accepted too
   - name: gcs-dataset1
     kind: gcs
     schema: {bucket: "gs://gcs-datasets/path1"}
     secret: {name: gcs-secret, mountPath: /etc/gcs}

Connections come from --config FILE (or $PLXFS_CONFIG), else from
$POLYAXON_CONNECTIONS_CATALOG (how Polyaxon hands them to a job's containers).
--connections a,b (or a polyaxonfile's run.connections) selects which ones to use.

Credentials are resolved per connection: the connection's secret/configMap mountPath,
its schema/env, then GC_KEY_PATH / GC_KEYFILE_DICT & co. in the environment, then
${POLYAXON_CONTEXT_ROOT:-/plx-context}/.gc/gc-secret.json, then Application Default
Credentials. 'plxfs connections list' shows what each connection will use.

Typical use:
   plxfs connections check --config conns.yaml        # can every connection be reached?
   plxfs mount --config conns.yaml /mnt/plx           # one directory per connection
   plxfs ls gcs-dataset1:train                        # CONNECTION:PATH or gs://bucket/path
   plxfs download -r gcs-dataset1:train ./train
   plxfs upload -r ./outputs gcs-dataset1:runs/42

Common flags (--config, --connections, --endpoint, --log-level, ...) may be given before
or after the command name, and any flag after the arguments ("--" ends the flags).
'plxfs COMMAND --help' explains each command; SEMANTICS.md says what the mount supports.
'plxfs completion bash|zsh|fish' prints shell completion.

Exit codes, for every command:
   0  done (also: nothing to do, or "no" answered at a prompt)
   1  some of the work failed: what failed is listed (plxfs wait: not ready in time)
   2  usage error: unknown command or flag, wrong arguments (a directory without -r),
      an unknown connection, a bad value; nothing was done`

func newApp() *cli.App {
	app := &cli.App{
		Name:                 "plxfs",
		Usage:                "mount and move Polyaxon GCS connections",
		Description:          manual,
		Version:              buildVersion(),
		EnableBashCompletion: true,
		Flags:                commonFlags(),
		Commands: []*cli.Command{
			connectionsCommand(),
			mountCommand(), unmountCommand(), statusCommand(),
			lsCommand(), rmCommand(), uploadCommand(), downloadCommand(), warmupCommand(),
			initCommand(),
			kubeCommand(), csiCommand(),
			waitCommand(),
			demoCommand(),
			versionCommand(),
			completionCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() reports errors and picks exit codes
		OnUsageError:   onUsageError,
	}
	setUsageErrors(app.Commands)
	return app
}

// onUsageError marks flag-parsing errors as usage errors (exit code 2).
func onUsageError(c *cli.Context, err error, _ bool) error {
	return usageError{err.Error()}
}

func setUsageErrors(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		setUsageErrors(cmd.Subcommands)
	}
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr *os.File) int {
	app := newApp()
	app.Writer, app.ErrWriter = stdout, stderr
	rts := &runtimes{stderr: stderr}
	defer rts.close()
	app.Metadata = map[string]any{runtimesKey: rts}
	completing := len(args) > 0 && args[len(args)-1] == "--generate-bash-completion"
	if !completing {
		if err := checkCommand(app, args); err != nil {
			fmt.Fprintln(stderr, "plxfs:", err)
			return 2
		}
		args = interspersed(app, args)
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return 0
	}
	if detail, ok := errorDetail(err); ok && rts.rt != nil {
		rts.rt.Logger().Debug("error detail", "err", detail)
	}
	var exitErr cli.ExitCoder
	if errors.As(err, &exitErr) {
		if msg := exitErr.Error(); msg != "" {
			fmt.Fprintln(stderr, "plxfs:", msg)
		}
		return exitErr.ExitCode()
	}
	fmt.Fprintln(stderr, "plxfs:", err)
	if isUsageError(err) {
		return 2
	}
	return 1
}
