package main

// A change made by plxfs's own commands (upload, rm) on this host shows in a running mount of
// the same bucket at once: the command tells every daemon of this user that listens on a
// default status socket (control.Sockets) which objects it changed, and each daemon forgets
// what it learnt of them (fs.FS.ChangedElsewhere) instead of reusing it for its TTL. Best
// effort: no daemon, or one that does not answer, is no error.

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/fs"
	"github.com/plxfs/plxfs/internal/control"
)

// tellTimeout bounds telling one daemon: a wedged daemon must not hold up the command.
const tellTimeout = 2 * time.Second

// tellMounts tells the local daemons of changes (none: nothing to tell).
func tellMounts(ctx context.Context, log *slog.Logger, changes []control.Change) {
	if len(changes) == 0 {
		return
	}
	ctx = context.WithoutCancel(ctx) // after Ctrl-C too: what was changed is changed
	for _, sock := range control.Sockets(control.ProcessEnv()) {
		tctx, cancel := context.WithTimeout(ctx, tellTimeout)
		err := control.TellChanged(tctx, sock, changes)
		cancel()
		if err != nil {
			log.Debug("could not tell a local plxfs daemon of the changes", "socket", sock, "err", err)
		}
	}
}

// changeOf is the change of path p (relative to r's bucket view; tree: everything below it).
func changeOf(r *remote, p string, tree bool) control.Change {
	return control.Change{Bucket: r.scope.Bucket, Name: r.prefix + p, Tree: tree}
}

// forgetChanged makes the mount forget what it learnt of changed objects, in every mounted
// connection that holds them.
func forgetChanged(fsys *fs.FS, conns []connspec.Connection, changes []control.Change, log *slog.Logger) {
	for _, ch := range changes {
		for _, conn := range conns {
			if conn.Bucket != ch.Bucket {
				continue
			}
			if p, tree, ok := connPath(conn.Prefix, ch); ok && fsys.ChangedElsewhere(conn.Name, p, tree) {
				log.Debug("changed by a plxfs command on this host; not reusing what was learnt of it", "connection", conn.Name, "path", p, "tree", tree)
			}
		}
	}
}

// connPath is where change ch is in a connection on prefix ("" or "a/b/"): the path relative
// to the connection, whether it is a tree, and whether the connection holds any of it.
func connPath(prefix string, ch control.Change) (p string, tree, ok bool) {
	name, pre := strings.Trim(ch.Name, "/"), strings.TrimSuffix(prefix, "/")
	switch {
	case pre == "":
		return name, ch.Tree, true
	case strings.HasPrefix(name, pre+"/"):
		return name[len(pre)+1:], ch.Tree, true
	case ch.Tree && (name == "" || name == pre || strings.HasPrefix(pre, name+"/")):
		return "", true, true // the whole connection is below the changed tree
	}
	return "", false, false
}
