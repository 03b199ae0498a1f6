// Package control is a running plxfs daemon's status endpoint: a unix socket on which the
// daemon answers GET /status with a JSON Status (connections, cache use, uploads, open
// handles, recent errors), and the client plxfs status uses to read it. Commands on the same
// host also tell a daemon of objects they changed (POST /changed) and ask it to warm its cache
// when it holds the cache directory they were given (POST /warmup: a JSON WarmupRequest, answered
// with JSON lines of progress as the work goes, the last one the result).
//
// # Why a unix socket
//
// A socket needs no port (hundreds of sidecars on one node never collide), is reachable only
// through the file system (mode 0600 in a 0700 directory: the owner, typically root, is the
// only one who can ask), and answers with live values. A control file inside the mount would
// have to be hidden from listings and kept from colliding with object names; a file written
// periodically elsewhere would be stale and outlive a crashed daemon.
//
// # Where the socket is
//
// Without --status-socket, both sides derive the path from the mountpoint (see SocketDirs
// and SocketName):
//
//	<dir>/<first 16 hex digits of sha256(absolute mountpoint)>.sock
//	dir: $XDG_RUNTIME_DIR/plxfs, else /run/plxfs (root), else $TMPDIR/plxfs-UID
//
// The daemon takes the first directory it can create privately; the client tries all three,
// so `plxfs status /mnt/plx` finds the daemon with no flags even from a shell whose
// environment differs from the daemon's. A socket file left by a killed daemon is replaced at
// the next start; a socket that still answers is refused (two daemons, one mountpoint).
//
// # Recent errors
//
// ErrorRing.Handler wraps the daemon's slog.Handler: every record at WARN or above is kept
// (time, level, message, attributes such as connection and path, flattened and truncated)
// in a fixed-size ring as well as logged as before. Logs never carry secrets (plxfs policy),
// so neither does the ring.
//
// # Locking
//
// ErrorRing.mu guards the ring only and is never held while calling the wrapped handler.
// The status function passed to Serve is called from HTTP handler goroutines.
package control
