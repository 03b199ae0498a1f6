package main

import (
	"os"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for every command that moves
// data. A process's resident set is at most about this plus the ~40 MiB of the binary's own
// pages, inside the 256Mi the sidecar manifests give plxfs. What the runtime holds is mostly
// transfer buffers (upload chunks: --workers × --upload-chunk-size, 18 MiB by default, and
// garbage of earlier ones); they hold no pointers, so a collection near the limit is cheap.
const defaultMemoryLimit = "60MiB"

// memoryLimitFlag is --memory-limit, shared by mount and the storage commands.
func memoryLimitFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "memory-limit", Value: defaultMemoryLimit, Usage: "soft limit of the Go runtime's memory (`SIZE`; 0: none): the garbage collector works harder near it. " + usage + " $GOMEMLIMIT overrides it"}
}

// parseMemoryLimit reads --memory-limit: 0 (or "") means none.
func parseMemoryLimit(c *cli.Context) (int64, error) {
	s := c.String("memory-limit")
	if s == "0" || s == "" {
		return 0, nil
	}
	return parseSize("--memory-limit", s)
}

// applyMemoryLimit sets the runtime's soft memory limit from --memory-limit, unless
// $GOMEMLIMIT (which the runtime has applied already) is set.
func applyMemoryLimit(c *cli.Context) error {
	n, err := parseMemoryLimit(c)
	if err != nil {
		return err
	}
	setMemoryLimit(n)
	return nil
}

func setMemoryLimit(n int64) {
	if n > 0 && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(n)
	}
}
