package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/sys/unix"
)

// Exit codes of `plxfs wait`, documented in its help.
const (
	waitReady   = 0
	waitTimeout = 1
	waitUsage   = 2
)

func waitCommand() *cli.Command {
	return &cli.Command{
		Name:      "wait",
		Usage:     "block until a plxfs mount is ready (for a main container's command or a startup probe)",
		ArgsUsage: "MOUNTPOINT",
		Description: `wait returns once MOUNTPOINT is a live FUSE mount, which plxfs makes only after every
selected connection has been validated, and the mount answers a stat. With --ready-file it
waits for that file instead (the one given to plxfs mount --ready-file).

Exit codes: 0 ready; 1 not ready before --timeout; 2 usage error.`,
		Flags: []cli.Flag{
			&cli.DurationFlag{Name: "timeout", Value: 60 * time.Second, Usage: "give up after this long"},
			&cli.StringFlag{Name: "ready-file", Usage: "wait for this `FILE` to exist instead of probing the mount"},
			&cli.DurationFlag{Name: "interval", Value: 100 * time.Millisecond, Usage: "time between probes"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usageErrorf("wait takes one MOUNTPOINT")
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			err := waitReadyMount(ctx, c.Args().First(), c.String("ready-file"), c.Duration("interval"))
			if err != nil {
				return cli.Exit(err.Error(), waitTimeout)
			}
			return nil
		},
	}
}

// fuseSuperMagic is statfs(2)'s f_type for every FUSE filesystem.
const fuseSuperMagic = 0x65735546

// isFUSEMount reports whether dir is the root of a live FUSE mount.
func isFUSEMount(dir string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		if errors.Is(err, unix.ENOTCONN) {
			return false, fmt.Errorf("%s: a mount is left behind by a daemon that is gone (run plxfs unmount %s)", dir, dir)
		}
		return false, err
	}
	return st.Type == fuseSuperMagic, nil
}

// waitReadyMount polls until the mount (or the ready file) is there, or ctx ends.
func waitReadyMount(ctx context.Context, mnt, readyFile string, interval time.Duration) error {
	probe := func() (bool, error) {
		if readyFile != "" {
			_, err := os.Stat(readyFile)
			return err == nil, nil
		}
		ok, err := isFUSEMount(mnt)
		if err != nil || !ok {
			return false, err
		}
		_, err = os.Stat(mnt)
		return err == nil, err
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	var last error
	for {
		ok, err := probe()
		if ok {
			return nil
		}
		last = err
		select {
		case <-ctx.Done():
			what := mnt + " is not mounted"
			if readyFile != "" {
				what = readyFile + " does not exist"
			}
			if last != nil {
				what += ": " + last.Error()
			}
			return fmt.Errorf("not ready: %s", what)
		case <-t.C:
		}
	}
}

// writeReadyFile creates path atomically (temp file + rename), so a reader never sees it
// half written. Its content is the daemon's pid.
func writeReadyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(fmt.Sprintf("%d\n", os.Getpid())), 0o644); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

// exitOnFile returns a channel that is closed once path exists (the sentinel a main container
// writes when it is done, for clusters without native sidecars), or never if path is "".
func exitOnFile(ctx context.Context, path string, interval time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if path == "" {
		return done
	}
	go func() {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			if _, err := os.Stat(path); err == nil {
				close(done)
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return done
}

// keepRunningOnClosedOutput makes a write to a closed stdout or stderr fail with EPIPE instead
// of killing the process: `plxfs mount … 2>&1 | tee log` stopped with Ctrl-C kills tee first,
// and a daemon that died of its next log line would leave a stale mount and its temporary
// files behind. Go's runtime kills a program on EPIPE at fd 1 or 2 unless the program asked
// for SIGPIPE; it asks with Notify rather than Ignore, because an ignored signal stays ignored
// in the programs it starts (fusermount3) and a caught one does not. The daemon commands
// (mount, demo, csi) call it first; the other commands keep dying quietly on a closed pipe
// (`plxfs ls | head`).
func keepRunningOnClosedOutput() {
	signal.Notify(make(chan os.Signal, 1), syscall.SIGPIPE) // never read: a full channel drops
	log.SetOutput(dropOnClosedPipe(os.Stderr))              // go-fuse's --debug-fuse trace
}

// closedPipeWriter passes writes on until the first EPIPE (its reader is gone for good), then
// drops them: a daemon whose log reader left logs nothing more, at no cost, instead of failing
// every line. Warnings and errors still reach plxfs status (control.ErrorRing).
type closedPipeWriter struct {
	w    io.Writer
	gone atomic.Bool
}

func dropOnClosedPipe(w io.Writer) io.Writer { return &closedPipeWriter{w: w} }

func (w *closedPipeWriter) Write(p []byte) (int, error) {
	if w.gone.Load() {
		return len(p), nil
	}
	n, err := w.w.Write(p)
	if errors.Is(err, syscall.EPIPE) {
		w.gone.Store(true)
		return len(p), nil
	}
	return n, err
}
