package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
)

// StatusPath is the HTTP path of the status document.
const StatusPath = "/status"

// Server answers GET /status on a listener (the daemon's unix socket) with status() as JSON,
// POST /changed and POST /warmup (see Handlers).
type Server struct {
	srv  *http.Server
	done chan struct{}
}

// Handlers are what a daemon answers on its socket. Each is called once per request and must
// be safe for concurrent use.
type Handlers struct {
	Status func() Status // GET /status
	// Changed is told of objects that plxfs commands on this host changed (POST /changed,
	// see TellChanged); nil: such requests are refused.
	Changed func([]Change)
	// Warmup fetches what the request names into the daemon's cache, telling emit of its
	// progress and, last, of its result (POST /warmup, see control.Warmup); nil: such
	// requests are refused.
	Warmup func(ctx context.Context, req WarmupRequest, emit func(WarmupEvent))
}

// Serve starts answering GET /status on ln in the background.
func Serve(ln net.Listener, status func() Status) *Server {
	return ServeHandlers(ln, Handlers{Status: status})
}

// ServeHandlers starts answering on ln in the background with h.
func ServeHandlers(ln net.Listener, h Handlers) *Server {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(h.Status())
	})
	if h.Changed != nil {
		mux.HandleFunc("POST "+ChangedPath, func(w http.ResponseWriter, r *http.Request) {
			var changes []Change
			if err := json.NewDecoder(io.LimitReader(r.Body, maxChangedBody)).Decode(&changes); err != nil {
				http.Error(w, "bad changes: "+err.Error(), http.StatusBadRequest)
				return
			}
			h.Changed(changes)
			w.WriteHeader(http.StatusNoContent)
		})
	}
	if h.Warmup != nil {
		mux.HandleFunc("POST "+WarmupPath, func(w http.ResponseWriter, r *http.Request) {
			serveWarmup(w, r, h.Warmup)
		})
	}
	s := &Server{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second},
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	return s
}

// Close stops answering, closes the listener (which removes a unix socket file) and waits for
// the serving goroutine.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	<-s.done
	return err
}

// ErrNoDaemon is wrapped by Get's error when no daemon listens on any socket it tried.
var ErrNoDaemon = errors.New("no plxfs daemon answers")

// call sends one request to the daemon listening on the unix socket path: a JSON body when
// body is not nil. The caller closes the answer's body. No daemon there is ErrNoDaemon.
func call(ctx context.Context, path, method, urlPath string, body []byte) (*http.Response, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		DisableKeepAlives: true,
	}}
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://plxfs"+urlPath, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := client.Do(req)
	if err != nil {
		if isNoListener(err) {
			return nil, fmt.Errorf("%w on %s", ErrNoDaemon, path)
		}
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	return resp, nil
}

// Get asks the daemon listening on the unix socket path for its status.
func Get(ctx context.Context, path string) (Status, error) {
	resp, err := call(ctx, path, http.MethodGet, StatusPath, nil)
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Status{}, fmt.Errorf("status socket %s: %s: %s", path, resp.Status, strings.TrimSpace(string(body)))
	}
	var st Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return Status{}, fmt.Errorf("status socket %s: bad answer: %w", path, err)
	}
	return st, nil
}

// GetAny tries the paths in order and returns the first daemon's status. When none answers
// the error wraps ErrNoDaemon and names every path tried.
func GetAny(ctx context.Context, paths []string) (Status, string, error) {
	for _, p := range paths {
		st, err := Get(ctx, p)
		if err == nil {
			return st, p, nil
		}
		if !errors.Is(err, ErrNoDaemon) {
			return Status{}, p, err
		}
	}
	return Status{}, "", fmt.Errorf("%w (tried %s)", ErrNoDaemon, strings.Join(paths, ", "))
}

// isNoListener reports whether err means nothing listens at the socket: no file, or a file
// left by a daemon that is gone.
func isNoListener(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTSOCK)
}
