package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/internal/control"
)

const statusDescription = `status asks the plxfs daemon serving MOUNTPOINT what it is doing: its connections
(bucket, prefix, where the credentials come from), cache use and hit ratio, bytes read from
GCS and served from the cache, uploads in flight, pending and failed, integrity checks
(checksum mismatches, upload outcomes checked, hedged requests, stalled calls), open files,
and the last warnings and errors it logged.

The daemon answers on a unix socket whose path is derived from the absolute MOUNTPOINT:
   $XDG_RUNTIME_DIR/plxfs/HASH.sock, else /run/plxfs/HASH.sock (root),
   else $TMPDIR/plxfs-UID/HASH.sock
(HASH: the first 16 hex digits of the SHA-256 of the mountpoint). status tries all of them.
If the daemon was started with --status-socket PATH, give the same --status-socket here.
Run it as the user who mounted (the socket is private to that user).

Exit codes: 0 the daemon answered, 1 no daemon answered, 2 usage error.`

func statusCommand() *cli.Command {
	return withCommonFlags(&cli.Command{
		Name:        "status",
		Usage:       "show what the daemon serving a mountpoint is doing (connections, cache, uploads, errors)",
		ArgsUsage:   "MOUNTPOINT",
		Description: statusDescription,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Value: "text", Usage: "text or json"},
			&cli.StringFlag{Name: "status-socket", EnvVars: []string{"PLXFS_STATUS_SOCKET"}, Usage: "the daemon's status socket `PATH`, when it was mounted with --status-socket"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Second, Usage: "how long to wait for the daemon's answer"},
		},
		Action: runStatus,
	})
}

func runStatus(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("status takes one MOUNTPOINT, got %d arguments", c.NArg())
	}
	output := c.String("output")
	if output != "text" && output != "json" {
		return usageErrorf("--output %q: use text or json", output)
	}
	mnt, err := filepath.Abs(c.Args().First())
	if err != nil {
		return usageErrorf("MOUNTPOINT %q: %v", c.Args().First(), err)
	}
	paths := control.SocketCandidates(control.ProcessEnv(), mnt)
	if p := c.String("status-socket"); p != "" {
		paths = []string{p}
	}
	ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
	defer cancel()
	st, path, err := control.GetAny(ctx, paths)
	switch {
	case errors.Is(err, control.ErrNoDaemon):
		return fmt.Errorf("no plxfs daemon answers for %s: is plxfs mounted there? (looked for %s)", mnt, strings.Join(paths, ", "))
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the plxfs daemon for %s did not answer within %v on %s: it may be stuck; 'plxfs unmount --lazy %s' detaches the mount", mnt, c.Duration("timeout"), path, mnt)
	case errors.Is(err, syscall.EACCES):
		return fmt.Errorf("%s: permission denied: run plxfs status as the user who mounted %s", path, mnt)
	case err != nil:
		return err
	}
	if output == "json" {
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStatus(c.App.Writer, st, time.Now())
	return nil
}

// writeStatus prints st as a readable block.
func writeStatus(w io.Writer, st control.Status, now time.Time) {
	mode := ""
	if st.ReadOnly {
		mode = ", read-only"
	}
	fmt.Fprintf(w, "plxfs %s (pid %d) serving %s since %s (up %s%s)\n",
		st.Version, st.PID, st.Mountpoint, st.Started.Local().Format(time.DateTime),
		now.Sub(st.Started).Round(time.Second), mode)

	fmt.Fprintf(w, "\nconnections (%d):\n", len(st.Connections))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, c := range st.Connections {
		fmt.Fprintf(tw, "  %s\tgs://%s/%s\tcredentials: %s\n", c.Name, c.Bucket, c.Prefix, c.Credentials)
	}
	tw.Flush()

	cs := st.Cache
	used := ""
	if cs.MaxBytes > 0 {
		used = fmt.Sprintf(" (%.0f%%)", 100*float64(cs.Bytes)/float64(cs.MaxBytes))
	}
	fmt.Fprintf(w, "\ncache:    %s\n", cs.Dir)
	fmt.Fprintf(w, "  used:   %s of %s%s, %d chunks, %d evictions\n", humanBytes(cs.Bytes), humanBytes(cs.MaxBytes), used, cs.Chunks, cs.Evictions)
	fmt.Fprintf(w, "  hits:   %.1f%% hit ratio (%d hits, %d misses)\n", 100*cs.HitRatio, cs.Hits, cs.Misses)
	fmt.Fprintf(w, "  reads:  %s served, %s downloaded from GCS\n", humanBytes(cs.ServedBytes), humanBytes(cs.GCSReadBytes))

	u := st.Uploads
	fmt.Fprintf(w, "\nuploads:  %d in flight, %d files pending, %d done (%s), %d failed\n", u.InFlight, u.Pending, u.Done, humanBytes(u.Bytes), u.Failures)
	in := st.Integrity
	fmt.Fprintf(w, "checks:   %d checksum mismatches, %d upload outcomes checked (%d landed), %d requests hedged, %d stalled calls failed\n",
		in.ChecksumMismatches, in.UploadOutcomesChecked, in.UploadOutcomesLanded, in.HedgedRequests, in.StalledCalls)
	backend := "answering"
	if in.CircuitsOpen > 0 {
		backend = fmt.Sprintf("NOT ANSWERING: %d kinds of calls fail at once while a probe retries", in.CircuitsOpen)
	}
	fmt.Fprintf(w, "backend:  %s; %d calls failed at once (%d outages), %d lookups served from stale metadata\n",
		backend, in.FailedFast, in.CircuitOpenings, in.StaleServed)
	fmt.Fprintf(w, "handles:  %d open\n", st.OpenHandles)

	if len(st.RecentErrors) == 0 {
		fmt.Fprintf(w, "\nno warnings or errors logged\n")
		return
	}
	fmt.Fprintf(w, "\nrecent warnings and errors (last %d of %d):\n", len(st.RecentErrors), st.ErrorsLogged)
	for _, r := range st.RecentErrors {
		var b strings.Builder
		for _, a := range r.Attrs {
			fmt.Fprintf(&b, " %s=%s", a.Key, quoteIfNeeded(a.Value))
		}
		fmt.Fprintf(w, "  %s %-5s %s%s\n", r.Time.Local().Format(time.DateTime), r.Level, r.Message, b.String())
	}
}

// quoteIfNeeded quotes values with spaces or quotes, as slog's text handler does.
func quoteIfNeeded(s string) string {
	if s == "" || strings.ContainsAny(s, " \t\n\"=") {
		return fmt.Sprintf("%q", s)
	}
	return s
}
