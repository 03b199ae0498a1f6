package csi

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// isMountPoint reports whether p is the mount point of some mount in this mount namespace
// (/proc/self/mountinfo), alive or not: a mount whose daemon is gone fails stat with ENOTCONN,
// so stat cannot tell.
func isMountPoint(p string) (bool, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, fmt.Errorf("reading the mount table: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMountinfo(fields[4]) == p {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space, and so on).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			ok := true
			for _, c := range []byte(s[i+1 : i+4]) {
				if c < '0' || c > '7' {
					ok = false
					break
				}
				v = v*8 + (c - '0')
			}
			if ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isStale reports whether p is a FUSE mount whose daemon is gone. statfs always reaches the
// daemon, where stat may be answered from the kernel's attribute cache.
func isStale(p string) bool {
	var st unix.Statfs_t
	err := unix.Statfs(p, &st)
	return errors.Is(err, unix.ENOTCONN) || errors.Is(err, unix.ECONNABORTED)
}

// unmountAll removes every mount stacked at p: politely first, detaching (MNT_DETACH) a mount
// that stays busy for wait or whose daemon is gone. Not a mount point: nothing to do.
func unmountAll(p string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for range 16 { // mounts can be stacked; 16 is far more than this driver ever makes
		mounted, err := isMountPoint(p)
		if err != nil {
			return err
		}
		if !mounted {
			return nil
		}
		flags := 0
		if isStale(p) {
			flags = unix.MNT_DETACH
		}
		err = unix.Unmount(p, flags)
		for errors.Is(err, unix.EBUSY) && flags == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = unix.Unmount(p, 0)
		}
		if errors.Is(err, unix.EBUSY) {
			err = unix.Unmount(p, unix.MNT_DETACH)
		}
		if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("unmount %s: %w", p, err)
		}
	}
	return fmt.Errorf("unmount %s: still a mount point after 16 unmounts", p)
}

// bindMount makes src visible at target, read-only when ro (a bind mount takes the read-only
// flag only on a remount).
func bindMount(src, target string, ro bool) error {
	if err := unix.Mount(src, target, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount %s at %s: %w", src, target, err)
	}
	if ro {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fmt.Errorf("remount %s read-only: %w", target, err)
		}
	}
	return nil
}
