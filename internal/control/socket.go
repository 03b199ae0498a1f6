package control

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// maxSocketPath is the longest unix socket path Linux accepts (sun_path is 108 bytes with the
// terminating NUL).
const maxSocketPath = 107

// Env is what the socket rule reads from the process: injected so tests need not change the
// real environment.
type Env struct {
	RuntimeDir string // $XDG_RUNTIME_DIR
	TempDir    string // os.TempDir()
	UID        int    // effective user id
}

// ProcessEnv is Env for this process.
func ProcessEnv() Env {
	return Env{RuntimeDir: os.Getenv("XDG_RUNTIME_DIR"), TempDir: os.TempDir(), UID: os.Geteuid()}
}

// SocketDirs are the directories a daemon's status socket may live in, in order of preference:
//
//	$XDG_RUNTIME_DIR/plxfs     when XDG_RUNTIME_DIR is set to an absolute path
//	/run/plxfs                 for root
//	$TMPDIR/plxfs-UID          always (os.TempDir, UID the effective user id)
//
// The daemon uses the first one it can create (mode 0700, owned by itself); plxfs status
// looks in all of them, so a client whose environment lacks XDG_RUNTIME_DIR (kubectl exec,
// sudo) still finds a daemon that had it.
func SocketDirs(env Env) []string {
	var dirs []string
	if filepath.IsAbs(env.RuntimeDir) {
		dirs = append(dirs, filepath.Join(env.RuntimeDir, "plxfs"))
	}
	if env.UID == 0 {
		dirs = append(dirs, "/run/plxfs")
	}
	tmp := env.TempDir
	if !filepath.IsAbs(tmp) {
		tmp = "/tmp"
	}
	return append(dirs, filepath.Join(tmp, "plxfs-"+strconv.Itoa(env.UID)))
}

// SocketName is the file name of the status socket of the daemon serving mountpoint: the
// first 16 hex digits of the SHA-256 of the cleaned absolute mountpoint, plus ".sock".
// mountpoint must be absolute (filepath.Abs); symlinks are not resolved, so a daemon and a
// client must name the mountpoint the same way (or pass --status-socket on both sides).
func SocketName(mountpoint string) string {
	h := sha256.Sum256([]byte(filepath.Clean(mountpoint)))
	return hex.EncodeToString(h[:8]) + ".sock"
}

// SocketCandidates are the paths plxfs status tries for mountpoint, in order.
func SocketCandidates(env Env, mountpoint string) []string {
	var out []string
	for _, d := range SocketDirs(env) {
		out = append(out, filepath.Join(d, SocketName(mountpoint)))
	}
	return out
}

// DefaultSocket creates (if needed) the first usable socket directory and returns the socket
// path for mountpoint in it. A directory is usable when it can be created and is a directory
// owned by env.UID that no one else can write to.
func DefaultSocket(env Env, mountpoint string) (string, error) {
	var errs []error
	for _, d := range SocketDirs(env) {
		if err := ensurePrivateDir(d, env.UID); err != nil {
			errs = append(errs, err)
			continue
		}
		return filepath.Join(d, SocketName(mountpoint)), nil
	}
	return "", fmt.Errorf("no directory for the status socket: %w", errors.Join(errs...))
}

func ensurePrivateDir(dir string, uid int) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case ok && int(st.Uid) != uid:
		return fmt.Errorf("%s belongs to uid %d, not %d", dir, st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by others (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

// Listen listens on the unix socket path. A socket file left by a daemon that is gone is
// replaced; one that still answers is an error (another daemon serves the same mountpoint).
// The socket is made accessible to its owner only (mode 0600).
func Listen(path string) (net.Listener, error) {
	if len(path) > maxSocketPath {
		return nil, fmt.Errorf("status socket path %s is %d bytes, longer than the %d a unix socket allows; give a shorter --status-socket", path, len(path), maxSocketPath)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("status socket %s exists and is not a socket; remove it or give another --status-socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("status socket %s is in use by another running plxfs", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale status socket: %w", err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("status socket: %w", err)
	}
	// Not umask: it is per process, and other goroutines create files meanwhile. The default
	// directory is private anyway; this covers a --status-socket elsewhere.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("status socket: %w", err)
	}
	return ln, nil
}
