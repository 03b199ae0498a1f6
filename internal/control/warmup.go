package control

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
)

// WarmupPath is the HTTP path on which a daemon is asked to warm its cache (plxfs warmup,
// when the daemon holds the cache directory).
const WarmupPath = "/warmup"

// maxWarmupBody bounds a POST /warmup body.
const maxWarmupBody = 64 << 10

// WarmupRequest asks a daemon to fetch every object below Dir of the connection on Bucket
// with Prefix ("" or "a/b/") into its cache.
type WarmupRequest struct {
	Bucket  string `json:"bucket"`
	Prefix  string `json:"prefix"`
	Dir     string `json:"dir"`
	Workers int    `json:"workers,omitempty"` // 0: the daemon's default
	DryRun  bool   `json:"dry_run,omitempty"`
	Force   bool   `json:"force,omitempty"`
}

// WarmupEvent is one line of a daemon's answer to POST /warmup (JSON lines, as the work goes):
// exactly one field is set, and the last line holds Result.
type WarmupEvent struct {
	Total  *WarmupTotal  `json:"total,omitempty"`  // the work found
	Bytes  int64         `json:"bytes,omitempty"`  // more bytes read
	Done   *WarmupDone   `json:"done,omitempty"`   // one object done
	Result *WarmupResult `json:"result,omitempty"` // the end
}

// WarmupTotal is the work a warmup found.
type WarmupTotal struct {
	Files int64 `json:"files"`
	Bytes int64 `json:"bytes"`
}

// WarmupDone is the outcome of one object.
type WarmupDone struct {
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	Skipped bool   `json:"skipped,omitempty"` // cached already
	Err     string `json:"err,omitempty"`
}

// WarmupResult is what a warmup did (see warmup.Result), or why it did not start (Err; with
// TooBig, the prefix does not fit the cache).
type WarmupResult struct {
	Files     int64  `json:"files"`
	Bytes     int64  `json:"bytes"`
	Skipped   int    `json:"skipped"`
	Failed    int    `json:"failed"`
	Objects   int    `json:"objects"`
	Total     int64  `json:"total"`
	Footprint int64  `json:"footprint"`
	MaxBytes  int64  `json:"max_bytes"`
	ElapsedMS int64  `json:"elapsed_ms"`
	TooBig    bool   `json:"too_big,omitempty"`
	Err       string `json:"err,omitempty"`
}

// serveWarmup answers POST /warmup with h: the request's events as JSON lines, flushed as
// they come. The request's context ends the warmup when the client goes away.
func serveWarmup(w http.ResponseWriter, r *http.Request, h func(context.Context, WarmupRequest, func(WarmupEvent))) {
	var req WarmupRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxWarmupBody)).Decode(&req); err != nil {
		http.Error(w, "bad warmup request: "+err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	h(r.Context(), req, func(ev WarmupEvent) {
		mu.Lock()
		defer mu.Unlock()
		if enc.Encode(ev) == nil && flusher != nil {
			flusher.Flush()
		}
	})
}

// Warmup asks the daemon listening on the unix socket path to warm its cache, calls on for
// each event of its answer as it arrives, and returns the result.
func Warmup(ctx context.Context, path string, req WarmupRequest, on func(WarmupEvent)) (WarmupResult, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return WarmupResult{}, err
	}
	resp, err := call(ctx, path, http.MethodPost, WarmupPath, body)
	if err != nil {
		return WarmupResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			return WarmupResult{}, fmt.Errorf("the daemon on %s does not take warmup requests (an older plxfs?): %s", path, resp.Status)
		}
		return WarmupResult{}, fmt.Errorf("status socket %s: %s: %s", path, resp.Status, strings.TrimSpace(string(msg)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev WarmupEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return WarmupResult{}, fmt.Errorf("status socket %s: bad warmup answer: %w", path, err)
		}
		if ev.Result != nil {
			return *ev.Result, nil
		}
		on(ev)
	}
	if err := sc.Err(); err != nil {
		return WarmupResult{}, fmt.Errorf("status socket %s: warmup answer broke off: %w", path, err)
	}
	return WarmupResult{}, fmt.Errorf("status socket %s: the daemon ended its warmup answer without a result (did it exit?)", path)
}
