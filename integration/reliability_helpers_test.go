package integration

// Helpers of the reliability suite (fault_test.go, crash_test.go, soak_test.go,
// hostile_test.go, secret_test.go): a plxfs mount daemon run as a subprocess that can be
// stopped, killed and restarted on the same cache dir; a slow-body middleware; byte checks.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// relBucket is the bucket of the reliability suite; its connection "ds" has the prefix "pre/".
const relBucket = "rel"

// relConns writes a connections file with "ds" on gs://rel/pre and returns its path.
func relConns(t *testing.T) string {
	t.Helper()
	return writeFile(t, "conns.yaml", "connections:\n- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://"+relBucket+"/pre\"}\n")
}

// relDaemon is one `plxfs mount` process, restartable on the same mountpoint and cache dir.
type relDaemon struct {
	t        *testing.T
	mnt      string
	cacheDir string
	args     []string // everything after "mount"
	env      []string
	logDir   string

	mu     sync.Mutex
	cmd    *exec.Cmd
	logf   *os.File
	exited chan struct{}
	runs   int
	err    error // the last run's exit error
}

// mountOpts configure startRelMount. Zero values: a fresh mountpoint and cache dir.
type mountOpts struct {
	endpoint string   // --endpoint (required unless env provides one)
	config   string   // --config
	flags    []string // extra mount flags
	env      []string // extra environment
	mnt      string
	cacheDir string
	noWait   bool // do not wait for the mount to be ready
}

// startRelMount starts `plxfs mount` and waits (plxfs wait) until the mount is ready. The
// daemon is killed and its mount detached when the test ends, whatever happened.
func startRelMount(t *testing.T, o mountOpts) *relDaemon {
	t.Helper()
	if o.mnt == "" {
		o.mnt = filepath.Join(t.TempDir(), "mnt")
		if err := os.Mkdir(o.mnt, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if o.cacheDir == "" {
		o.cacheDir = filepath.Join(t.TempDir(), "cache")
	}
	args := []string{"--cache-dir", o.cacheDir}
	if o.config != "" {
		args = append(args, "--config", o.config)
	}
	if o.endpoint != "" {
		args = append(args, "--endpoint", o.endpoint)
	}
	args = append(args, o.flags...)
	args = append(args, o.mnt)
	d := &relDaemon{t: t, mnt: o.mnt, cacheDir: o.cacheDir, args: args, env: o.env, logDir: t.TempDir()}
	t.Cleanup(d.cleanup)
	d.start()
	if !o.noWait {
		d.waitReady()
	}
	return d
}

func (d *relDaemon) start() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.runs++
	logf, err := os.Create(filepath.Join(d.logDir, fmt.Sprintf("run%d.log", d.runs)))
	if err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command(plxfsBin, append([]string{"mount"}, d.args...)...)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + d.logDir, "GOTRACEBACK=all"}, d.env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = d.logDir // never on the mount
	if err := cmd.Start(); err != nil {
		logf.Close()
		d.t.Fatalf("starting plxfs mount: %v", err)
	}
	exited := make(chan struct{})
	d.cmd, d.logf, d.exited = cmd, logf, exited
	go func() {
		err := cmd.Wait()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		logf.Close()
		close(exited)
	}()
}

// waitReady runs plxfs wait on the mountpoint; it fails the test with the daemon's log if the
// mount does not come up.
func (d *relDaemon) waitReady() {
	d.t.Helper()
	res := runPlxfs(d.t, nil, "wait", "--timeout", "60s", d.mnt)
	if res.Code != 0 {
		d.t.Fatalf("plxfs wait %s: exit %d: %s\ndaemon log:\n%s", d.mnt, res.Code, res.Stderr, d.log())
	}
	select {
	case <-d.exitedCh():
		d.t.Fatalf("the daemon exited right after mounting (%v); log:\n%s", d.exitErr(), d.log())
	default:
	}
}

func (d *relDaemon) exitedCh() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.exited
}

func (d *relDaemon) exitErr() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// pid is the running daemon's process id.
func (d *relDaemon) pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd.Process.Pid
}

// restart starts the daemon again with the same arguments (after a kill or a stop).
func (d *relDaemon) restart() {
	d.t.Helper()
	select {
	case <-d.exitedCh():
	default:
		d.t.Fatal("restart of a running daemon")
	}
	d.start()
	d.waitReady()
}

// kill sends SIGKILL and waits for the process to be gone. The mount stays behind, stale.
func (d *relDaemon) kill() {
	d.t.Helper()
	d.signal(syscall.SIGKILL)
	select {
	case <-d.exitedCh():
	case <-time.After(30 * time.Second):
		d.t.Fatal("the daemon did not die after SIGKILL")
	}
}

func (d *relDaemon) signal(sig os.Signal) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd != nil && d.cmd.ProcessState == nil {
		_ = d.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and returns the exit error (nil for exit code 0).
func (d *relDaemon) stop(timeout time.Duration) error {
	d.t.Helper()
	d.signal(syscall.SIGTERM)
	select {
	case <-d.exitedCh():
		return d.exitErr()
	case <-time.After(timeout):
		d.t.Fatalf("the daemon did not exit within %v of SIGTERM; log:\n%s", timeout, d.log())
	}
	return nil
}

// log returns every run's log, run after run.
func (d *relDaemon) log() string {
	var b strings.Builder
	for i := 1; ; i++ {
		data, err := os.ReadFile(filepath.Join(d.logDir, fmt.Sprintf("run%d.log", i)))
		if err != nil {
			break
		}
		fmt.Fprintf(&b, "--- run %d ---\n", i)
		b.Write(tailBytes(data, 64<<10))
	}
	return b.String()
}

// fullLog is log without truncation (for secret scans).
func (d *relDaemon) fullLog() []byte {
	var b bytes.Buffer
	for i := 1; ; i++ {
		data, err := os.ReadFile(filepath.Join(d.logDir, fmt.Sprintf("run%d.log", i)))
		if err != nil {
			break
		}
		b.Write(data)
	}
	return b.Bytes()
}

func tailBytes(b []byte, n int) []byte {
	if len(b) <= n {
		return b
	}
	return append([]byte("...\n"), b[len(b)-n:]...)
}

func (d *relDaemon) cleanup() {
	if d.t.Failed() {
		d.t.Logf("daemon log (the test failed):\n%s", d.log())
	}
	d.signal(syscall.SIGKILL)
	select {
	case <-d.exitedCh():
	case <-time.After(30 * time.Second):
	}
	detachMount(d.mnt)
}

// detach removes whatever FUSE mount (live or stale) is at mnt.
func detachMount(mnt string) {
	for range 5 {
		if err := syscall.Unmount(mnt, syscall.MNT_DETACH); err != nil {
			return
		}
	}
}

// path is a path inside the mount.
func (d *relDaemon) path(parts ...string) string {
	return filepath.Join(append([]string{d.mnt}, parts...)...)
}

// procCounts reports the daemon's threads and open file descriptors from /proc.
func procCounts(pid int) (threads, fds int, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "Threads:"); ok {
			threads, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return 0, 0, err
	}
	return threads, len(ents), nil
}

// dirBytes sums the disk space of the regular files under dir (allocated blocks: cache data
// files are sparse), and counts them.
func dirBytes(dir string) (int64, int) {
	var n int64
	var files int
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && e.Type().IsRegular() {
			n += allocated(p) // cache data files are sparse
			files++
		}
		return nil
	})
	return n, files
}

// randData returns n reproducible pseudo-random bytes.
func randData(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func shortSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// dropPageCache asks the kernel to forget the cached pages of path, so that the next read goes
// to the daemon rather than being served from the page cache.
func dropPageCache(f *os.File) {
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// readVerified reads the whole file at path (after dropping its page cache) and compares it
// with want. It returns the error of the open or read; wrong bytes are reported as wrongErr.
func readVerified(path string, want []byte) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	dropPageCache(f)
	got, err := io.ReadAll(f)
	// Whatever arrived before an error must be the object's own bytes.
	if len(got) > len(want) || !bytes.Equal(got, want[:len(got)]) {
		return &wrongErr{path: path, got: len(got), want: len(want), at: firstDiff(got, want)}
	}
	if err != nil {
		return err
	}
	if len(got) != len(want) {
		return &wrongErr{path: path, got: len(got), want: len(want), at: len(got)}
	}
	return nil
}

// preadVerified reads n bytes at off and compares them with want[off:off+n].
func preadVerified(f *os.File, want []byte, off, n int64) error {
	buf := make([]byte, n)
	m, err := f.ReadAt(buf, off)
	end := min(off+n, int64(len(want)))
	exp := want[min(off, end):end]
	if m > len(exp) || !bytes.Equal(buf[:m], exp[:m]) {
		return &wrongErr{path: f.Name(), got: m, want: len(exp), at: int(off) + firstDiff(buf[:m], exp)}
	}
	if err != nil && !(errors.Is(err, io.EOF) && m == len(exp)) {
		return err
	}
	if m != len(exp) {
		return &wrongErr{path: f.Name(), got: m, want: len(exp), at: int(off) + m}
	}
	return nil
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// wrongErr is a read that returned bytes other than the object's: the one outcome the
// reliability suite never tolerates.
type wrongErr struct {
	path      string
	got, want int
	at        int
}

func (e *wrongErr) Error() string {
	return fmt.Sprintf("WRONG BYTES from %s: got %d bytes, want %d, first difference at byte %d", e.path, e.got, e.want, e.at)
}

func isWrong(err error) bool {
	var w *wrongErr
	return errors.As(err, &w)
}

// errnoOf returns the errno inside err, or 0.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}

// tally counts outcomes of concurrent operations.
type tally struct {
	mu     sync.Mutex
	counts map[string]int
	errs   []string // unexpected outcomes, at most 20 kept
	nerrs  int
}

func (t *tally) add(what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts == nil {
		t.counts = map[string]int{}
	}
	t.counts[what]++
}

func (t *tally) bad(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.nerrs++
	if len(t.errs) < 20 {
		t.errs = append(t.errs, fmt.Sprintf(format, args...))
	}
}

func (t *tally) get(what string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[what]
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return fmt.Sprint(t.counts)
}

// failIfBad fails the test with the unexpected outcomes.
func (t *tally) failIfBad(tb testing.TB, what string) {
	tb.Helper()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.nerrs > 0 {
		tb.Errorf("%s: %d unexpected outcomes (first %d):\n  %s", what, t.nerrs, len(t.errs), strings.Join(t.errs, "\n  "))
	}
}

// trickle is a middleware that, while on, sends the bodies of object media reads (XML GETs
// /<bucket>/<object>) slowly, in small pieces: a crash then finds chunk fetches half done.
type trickle struct {
	on     atomic.Bool
	piece  int
	pause  time.Duration
	active atomic.Int64 // media responses being trickled right now
}

func (tr *trickle) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !tr.on.Load() || r.Method != http.MethodGet || strings.HasPrefix(r.URL.Path, "/storage/") ||
			strings.HasPrefix(r.URL.Path, "/upload/") || strings.HasPrefix(r.URL.Path, "/download/") {
			next.ServeHTTP(w, r)
			return
		}
		tr.active.Add(1)
		defer tr.active.Add(-1)
		next.ServeHTTP(&slowWriter{ResponseWriter: w, piece: tr.piece, pause: tr.pause, ctx: r.Context().Done()}, r)
	})
}

type slowWriter struct {
	http.ResponseWriter
	piece int
	pause time.Duration
	ctx   <-chan struct{}
}

func (s *slowWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), s.piece)
		m, err := s.ResponseWriter.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		p = p[k:]
		select {
		case <-s.ctx:
			return n, errors.New("client gone")
		case <-time.After(s.pause):
		}
	}
	return n, nil
}

// chain composes middlewares: mwChain(a, b)(h) = a(b(h)).
func mwChain(mws ...func(http.Handler) http.Handler) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		for i := len(mws) - 1; i >= 0; i-- {
			h = mws[i](h)
		}
		return h
	}
}

// waitFor polls cond every 20ms until it holds or timeout passes.
func pollUntil(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// isStale reports whether mnt is a mount whose daemon is gone. statfs(2) is asked rather than
// stat(2): the kernel answers stat of a FUSE root from its attribute cache, even after the
// daemon died, while statfs always goes to the daemon.
func isStale(mnt string) bool {
	var st unix.Statfs_t
	return errors.Is(unix.Statfs(mnt, &st), unix.ENOTCONN)
}

// mountsAt counts the mounts stacked at dir (from /proc/self/mountinfo).
func mountsAt(dir string) int {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return -1
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}
