package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// ChangedPath is the HTTP path on which a daemon is told of changed objects.
const ChangedPath = "/changed"

// maxChangedBody bounds a POST /changed body; MaxChanges bounds what a client sends (more
// changes are sent as the trees holding them, by the caller).
const (
	maxChangedBody = 1 << 20
	MaxChanges     = 1000
)

// Change is an object that a plxfs command on this host created, replaced or deleted: Name in
// Bucket, or with Tree every object below the directory Name ("" with Tree: the whole bucket).
// A daemon serving a connection on Bucket forgets what it learnt of them, so that its mount
// shows the change at once instead of after its TTL.
type Change struct {
	Bucket string `json:"bucket"`
	Name   string `json:"name"`
	Tree   bool   `json:"tree,omitempty"`
}

// TellChanged tells the daemon listening on the unix socket path of changes.
func TellChanged(ctx context.Context, path string, changes []Change) error {
	body, err := json.Marshal(changes)
	if err != nil {
		return err
	}
	resp, err := call(ctx, path, http.MethodPost, ChangedPath, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("status socket %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// Sockets lists the sockets in env's socket directories (SocketDirs): the daemons of this
// user that use the default socket, and sockets left by killed ones (TellChanged then finds
// no daemon).
func Sockets(env Env) []string {
	var out []string
	for _, d := range SocketDirs(env) {
		entries, err := os.ReadDir(d)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if e.Type()&os.ModeSocket != 0 && strings.HasSuffix(e.Name(), ".sock") {
				out = append(out, filepath.Join(d, e.Name()))
			}
		}
	}
	return out
}
