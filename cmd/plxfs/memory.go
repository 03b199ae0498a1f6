package main

import (
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/plxfs/plxfs/cache"
)

// defaultMemoryLimit is the Go runtime's soft memory limit for every command that moves
// data. A process's resident set is at most about this plus the ~40 MiB of the binary's own
// pages, inside the 256Mi the sidecar manifests give plxfs. What the runtime holds is mostly
// transfer buffers (upload chunks: --workers × --upload-chunk-size, 18 MiB by default, and
// garbage of earlier ones); they hold no pointers, so a collection near the limit is cheap.
const defaultMemoryLimit = "60MiB"

// memoryLimitFlag is --memory-limit, shared by mount and the storage commands.
func memoryLimitFlag(usage string) cli.Flag {
	return &cli.StringFlag{Name: "memory-limit", Value: defaultMemoryLimit, Usage: "soft limit of the Go runtime's memory (`SIZE`; 0: none): the garbage collector works harder near it. " + usage + " Under a cgroup memory limit the default is at most 30% of it. $GOMEMLIMIT overrides it"}
}

// parseMemoryLimit reads --memory-limit: 0 (or "") means none. The default follows a cgroup
// memory limit (autoHeapLimit).
func parseMemoryLimit(c *cli.Context) (int64, error) {
	s := c.String("memory-limit")
	if s == "0" || s == "" {
		return 0, nil
	}
	n, err := parseSize("--memory-limit", s)
	if err != nil || c.IsSet("memory-limit") {
		return n, err
	}
	return autoHeapLimit(n, cgroupMemoryLimit()), nil
}

// parsePrefetchMemory reads --prefetch-memory: a SIZE, or auto (autoPrefetchMemory).
func parsePrefetchMemory(s string) (int64, error) {
	if s == "auto" || s == "" {
		return autoPrefetchMemory(cgroupMemoryLimit()), nil
	}
	return parseSize("--prefetch-memory", s)
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

// Memory that follows the job. Under a cgroup memory limit (a pod's
// resources.limits.memory), the daemon's defaults are sized from it so that a small limit means
// a slower mount, never an OOM kill: the read path's budget (--prefetch-memory auto) takes a
// quarter of the limit, at most defaultPrefetchMemory, and the Go heap's soft limit
// (--memory-limit) at most 30% of it. What is left covers the binary's pages (~40 MiB) and the
// kernel's page cache is reclaimable.
const (
	defaultPrefetchMemory       = cache.DefaultPrefetchMemory
	minPrefetchMemory     int64 = 16 << 20
	minHeapLimit          int64 = 24 << 20
)

// cgroupRoot and procCgroup locate the cgroup file systems; tests point them elsewhere.
var (
	cgroupRoot = "/sys/fs/cgroup"
	procCgroup = "/proc/self/cgroup"
)

// cgroupMemoryLimit returns the memory limit of the cgroup this process runs in (the smallest
// along its path, cgroup v2 or v1), or 0 when there is none.
func cgroupMemoryLimit() int64 {
	b, err := os.ReadFile(procCgroup)
	if err != nil {
		return 0
	}
	var limit int64
	take := func(file string) {
		v, err := os.ReadFile(file)
		if err != nil {
			return
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil || n <= 0 || n >= 1<<60 { // "max", or v1's "unlimited" 9223372036854771712
			return
		}
		if limit == 0 || n < limit {
			limit = n
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var base, file string
		switch {
		case parts[0] == "0" && parts[1] == "":
			base, file = cgroupRoot, "memory.max"
		case slices.Contains(strings.Split(parts[1], ","), "memory"):
			base, file = filepath.Join(cgroupRoot, "memory"), "memory.limit_in_bytes"
		default:
			continue
		}
		// From the process's own cgroup up to the root: a parent's limit binds too. (In a
		// container with its own cgroup namespace the path is "/".)
		for p := filepath.Clean("/" + parts[2]); ; p = filepath.Dir(p) {
			take(filepath.Join(base, p, file))
			if p == "/" {
				break
			}
		}
	}
	return limit
}

// autoPrefetchMemory is --prefetch-memory auto: defaultPrefetchMemory, or a quarter of the
// cgroup's memory limit when that is less (at least minPrefetchMemory).
func autoPrefetchMemory(cgroupLimit int64) int64 {
	if cgroupLimit <= 0 {
		return defaultPrefetchMemory
	}
	return max(min(defaultPrefetchMemory, cgroupLimit/4), minPrefetchMemory)
}

// autoHeapLimit bounds the default --memory-limit by 30% of the cgroup's memory limit.
func autoHeapLimit(def, cgroupLimit int64) int64 {
	if cgroupLimit <= 0 {
		return def
	}
	return max(min(def, cgroupLimit*3/10), minHeapLimit)
}
