package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"
)

// gcsProc is fake-gcs-server running as its own process (the module's binary, built once per
// test binary), filesystem backend on tmpfs when there is one, plain HTTP on loopback: what the
// benchmarks measure against, so that the emulator shares neither the benchmark's Go runtime
// nor its scheduler (EMULATOR.md). Objects are seeded and read through its HTTP API, with a
// plain HTTP client: that client is also the "direct GET" baseline.
type gcsProc struct {
	host   string // "127.0.0.1:PORT", the emulator's or, seen through a link, the proxy's
	cmd    *exec.Cmd
	root   string
	client *http.Client
	exited chan struct{}
	proxy  *shapeProc // the shaping proxy in front (see through), nil for a direct view
}

// directClient is the plain HTTP client of the direct baselines: up to 64 connections kept.
func directClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        64,
		MaxIdleConnsPerHost: 64,
		DisableCompression:  true,
	}}
}

// toolBins are the helper programs the benchmarks run as processes (fake-gcs-server, the
// shaping proxy), built on first use into one temporary directory that TestMain removes.
var toolBins struct {
	sync.Mutex
	dir   string // "" until the first build
	built map[string]string
}

// removeToolBins removes the built helpers, if any. TestMain calls it after the run.
func removeToolBins() {
	if toolBins.dir != "" {
		os.RemoveAll(toolBins.dir)
	}
}

// toolBinary builds the main package pkg (at the version go.mod requires) once per test binary
// and returns the program's path.
func toolBinary(pkg string) (string, error) {
	toolBins.Lock()
	defer toolBins.Unlock()
	if bin, ok := toolBins.built[pkg]; ok {
		return bin, nil
	}
	if toolBins.dir == "" {
		dir, err := os.MkdirTemp("", "plxfs-bench-tools-")
		if err != nil {
			return "", err
		}
		toolBins.dir, toolBins.built = dir, map[string]string{}
	}
	bin := filepath.Join(toolBins.dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	toolBins.built[pkg] = bin
	return bin, nil
}

// startGCSProc starts the emulator process with the given buckets; it is killed when tb ends.
func startGCSProc(tb testing.TB, buckets ...string) *gcsProc {
	tb.Helper()
	bin, err := toolBinary("github.com/fsouza/fake-gcs-server")
	if err != nil {
		tb.Fatal(err)
	}
	root, err := os.MkdirTemp(tmpfsBase(), "plxfs-bench-gcs-")
	if err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	host := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// -public-host makes XML reads (/<bucket>/<object>, which plxfs's client uses) work; without
	// a port it matches any port of 127.0.0.1, so reads through a shaping proxy (shapeProc) work
	// too. -external-url points resumable-upload sessions back at it, not at a proxy.
	cmd := exec.Command(bin, "-backend", "filesystem", "-filesystem-root", root,
		"-scheme", "http", "-host", "127.0.0.1", "-port", strconv.Itoa(port),
		"-public-host", "127.0.0.1", "-external-url", "http://"+host, "-log-level", "error")
	cmd.SysProcAttr = dieWithTest()
	var logs lockedBuffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	g := &gcsProc{host: host, cmd: cmd, root: root, exited: make(chan struct{}), client: directClient()}
	go func() {
		cmd.Wait()
		close(g.exited)
	}()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-g.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-g.exited
		}
		os.RemoveAll(root)
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := g.client.Get(g.URL() + "/storage/v1/b")
		if err == nil {
			resp.Body.Close()
			break
		}
		select {
		case <-g.exited:
			tb.Fatalf("fake-gcs-server exited early:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("fake-gcs-server not answering after 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, b := range buckets {
		body := fmt.Sprintf(`{"name":%q}`, b)
		g.do(tb, http.MethodPost, "/storage/v1/b?project=bench", strings.NewReader(body), int64(len(body)))
	}
	return g
}

// tmpfsBase is /dev/shm when it is writable (the filesystem backend is fastest on tmpfs, and
// dropping the page cache then leaves the emulator's objects in memory), else the default.
func tmpfsBase() string {
	if f, err := os.CreateTemp("/dev/shm", ".plxfs-probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return "/dev/shm"
	}
	return ""
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// URL is the emulator's base URL, for --endpoint.
func (g *gcsProc) URL() string { return "http://" + g.host }

// Pid is the emulator's process id.
func (g *gcsProc) Pid() int { return g.cmd.Process.Pid }

func (g *gcsProc) do(tb testing.TB, method, path string, body io.Reader, size int64) {
	tb.Helper()
	req, err := http.NewRequest(method, g.URL()+path, body)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.ContentLength = size
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.client.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		tb.Fatalf("%s %s: %s %s", method, path, resp.Status, msg)
	}
}

// put uploads an object in one request (uploadType=media), streaming body.
func (g *gcsProc) put(bucket, name string, body io.Reader, size int64) error {
	req, err := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/upload/storage/v1/b/%s/o?uploadType=media&name=%s", g.URL(), bucket, url.QueryEscape(name)), body)
	if err != nil {
		return err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := g.client.Do(req)
	if err != nil {
		return fmt.Errorf("upload gs://%s/%s: %w", bucket, name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload gs://%s/%s: %s %s", bucket, name, resp.Status, msg)
	}
	return nil
}

// putFile uploads a local file as one object.
func (g *gcsProc) putFile(tb testing.TB, bucket, name, local string) {
	tb.Helper()
	f, err := os.Open(local)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		tb.Fatal(err)
	}
	if err := g.put(bucket, name, f, fi.Size()); err != nil {
		tb.Fatal(err)
	}
}

// putMany uploads objects name(i) with content data(i), i in [0, n), 8 uploads at a time.
func (g *gcsProc) putMany(tb testing.TB, bucket string, n int, name func(int) string, data func(int) []byte) {
	tb.Helper()
	var eg errgroup.Group
	eg.SetLimit(8)
	for i := range n {
		eg.Go(func() error {
			b := data(i)
			return g.put(bucket, name(i), bytes.NewReader(b), int64(len(b)))
		})
	}
	if err := eg.Wait(); err != nil {
		tb.Fatal(err)
	}
}

// delete removes an object (missing is fine).
func (g *gcsProc) delete(tb testing.TB, bucket, name string) {
	tb.Helper()
	req, err := http.NewRequest(http.MethodDelete, fmt.Sprintf("%s/storage/v1/b/%s/o/%s", g.URL(), bucket, url.PathEscape(name)), nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := g.client.Do(req)
	if err != nil {
		tb.Fatalf("delete gs://%s/%s: %v", bucket, name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// get reads n bytes of an object at off (n < 0: to the end, no Range header) with one XML-API
// GET, as plxfs's client does, and returns how many bytes came. buf is the copy buffer.
func (g *gcsProc) get(ctx context.Context, bucket, name string, off, n int64, buf []byte) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.URL()+"/"+bucket+"/"+(&url.URL{Path: name}).EscapedPath(), nil)
	if err != nil {
		return 0, err
	}
	if n >= 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, off+n-1))
	} else if off > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", off))
	}
	resp, err := g.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusPartialContent {
		return 0, fmt.Errorf("GET gs://%s/%s: %s", bucket, name, resp.Status)
	}
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
	if err == nil && n >= 0 && got != n {
		err = errors.New("short read")
	}
	return got, err
}

// getParallel reads a size-byte object in parts ranged GETs at once and returns the bytes read.
func (g *gcsProc) getParallel(ctx context.Context, bucket, name string, size int64, parts int) (int64, error) {
	var eg errgroup.Group
	var mu sync.Mutex
	var total int64
	per := (size + int64(parts) - 1) / int64(parts)
	for off := int64(0); off < size; off += per {
		eg.Go(func() error {
			k, err := g.get(ctx, bucket, name, off, min(per, size-off), make([]byte, 1<<20))
			mu.Lock()
			total += k
			mu.Unlock()
			return err
		})
	}
	err := eg.Wait()
	return total, err
}
