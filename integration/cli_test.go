package integration

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/emulator"
)

// TestExitCodes is README's exit-code table, command by command, run on the built binary: 0
// done, 1 some work failed, 2 usage (nothing done).
func TestExitCodes(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{})
	for _, n := range []string{"pre/dir/a", "pre/dir/b", "pre/one.txt"} {
		if err := srv.PutObject(storageBucket, n, []byte(n), ""); err != nil {
			t.Fatal(err)
		}
	}
	local := t.TempDir()
	if err := os.WriteFile(filepath.Join(local, "f.txt"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(local, "f.txt")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown command", []string{"bogus"}, 2, "unknown command bogus; commands: "},
		{"typo of a command", []string{"dowload"}, 2, "did you mean download?; see plxfs --help"},
		{"unknown subcommand", []string{"connections", "chek"}, 2, "did you mean check?; see plxfs connections --help"},
		{"help of an unknown topic", []string{"help", "bogus"}, 2, "unknown command bogus"},
		{"unknown flag", []string{"ls", "--bogus", "ds:"}, 2, ""},
		{"ls done", append([]string{"ls"}, append(common, "ds:dir")...), 0, ""},
		{"ls nothing there", append([]string{"ls"}, append(common, "ds:nothing")...), 1, "no such object or directory"},
		{"ls unknown connection", append([]string{"ls"}, append(common, "nope:x")...), 2, `connection "nope": not found`},
		{"rm directory without -r", append([]string{"rm"}, append(common, "ds:dir")...), 2, "is a directory: use rm -r"},
		{"rm -r -f with a stray file", append([]string{"rm", "-r"}, append(common, "ds:dir", "-f", "pf.yaml")...), 2, "-f is --force"},
		{"rm missing object", append([]string{"rm"}, append(common, "ds:nothing")...), 1, "no such object"},
		{"download directory without -r", append([]string{"download"}, append(common, "ds:dir", t.TempDir())...), 2, "is a directory: use download -r"},
		{"download -r into a file", append([]string{"download", "-r"}, append(common, "ds:dir", aFile)...), 2, aFile + " is a file, not a directory"},
		{"download into a file below a file", append([]string{"download"}, append(common, "ds:one.txt", filepath.Join(aFile, "sub"))...), 2, aFile + " is a file, not a directory"},
		{"download missing", append([]string{"download"}, append(common, "ds:nothing", t.TempDir())...), 1, "no such object"},
		{"upload directory without -r", append([]string{"upload"}, append(common, local, "ds:up")...), 2, "is a directory: use upload -r"},
		{"upload done", append([]string{"upload"}, append(common, aFile, "ds:up")...), 0, "uploaded 1 files"},
		{"upload -f replaces", append([]string{"upload", "-f"}, append(common, aFile, "ds:up")...), 0, "uploaded 1 files"},
		{"init unknown connection", append([]string{"init", "--connection", "nope"}, common...), 2, `connection "nope": not found`},
		{"init unknown connection, --ignore-errors", append([]string{"init", "--ignore-errors", "--connection", "nope"}, common...), 2, `connection "nope": not found`},
		{"connections check unknown name", append([]string{"connections", "check"}, append(common, "nope")...), 2, "not found"},
		{"version", []string{"version"}, 0, ""},
		{"completion without a shell", []string{"completion"}, 2, "bash, zsh or fish"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := runPlxfs(t, []string{"POLYAXON_CONTEXT_ROOT=" + t.TempDir()}, tc.args...)
			if res.Code != tc.code || !strings.Contains(res.Stderr, tc.want) {
				t.Fatalf("plxfs %v: exit %d, stderr %q; want exit %d and %q", tc.args, res.Code, res.Stderr, tc.code, tc.want)
			}
			if res.Code != 0 && strings.Contains(res.Stderr, " 0 failed") {
				t.Errorf("a \"0 failed\" summary next to exit %d: %q", res.Code, res.Stderr)
			}
		})
	}
	if names, _ := srv.ObjectNames(storageBucket, "pre/dir/"); len(names) != 2 {
		t.Errorf("a refused rm deleted objects: %v left", names)
	}
}

// TestDownloadIntoAFileFetchesNothing: the check comes before any request for data.
func TestDownloadIntoAFileFetchesNothing(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{})
	if err := srv.PutObject(storageBucket, "pre/dir/a", []byte("a"), ""); err != nil {
		t.Fatal(err)
	}
	file := writeFile(t, "target", "mine")
	srv.ResetCounts()
	res := plx(t, common, "download", "-r", "ds:dir", file)
	mustCode(t, "download -r into a file", res, 2)
	if n := srv.Requests().MediaGets; n != 0 {
		t.Errorf("%d object reads before refusing", n)
	}
	if got, _ := os.ReadFile(file); string(got) != "mine" {
		t.Errorf("the target file changed: %q", got)
	}
}

// TestErrorMessagesOfTheBinary: an unreachable endpoint and a missing bucket, as the user
// reads them (connection, what was done, cause, what to do), with the URL only at debug.
func TestErrorMessagesOfTheBinary(t *testing.T) {
	conf := writeFile(t, "conns.yaml", "connections:\n- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://no-such-bucket/p\"}\n")
	res := runPlxfs(t, nil, "ls", "--config", conf, "--endpoint", "http://127.0.0.1:1", "ds:train")
	want := `plxfs: connection "ds": listing "ds:train": connection to 127.0.0.1 refused; is the emulator running at http://127.0.0.1:1?`
	if res.Code != 1 || !strings.HasPrefix(res.Stderr, want) || strings.Count(res.Stderr, "\n") != 1 || strings.Contains(res.Stderr, "alt=json") {
		t.Errorf("refused: exit %d, stderr %q; want one line starting %q", res.Code, res.Stderr, want)
	}
	res = runPlxfs(t, nil, "ls", "--log-level", "debug", "--config", conf, "--endpoint", "http://127.0.0.1:1", "ds:train")
	if !strings.Contains(res.Stderr, "alt=json") {
		t.Errorf("--log-level debug does not show the request: %q", res.Stderr)
	}
	srv := startEmulator(t, emulator.Options{})
	res = runPlxfs(t, nil, "ls", "--config", conf, "--endpoint", srv.URL(), "ds:")
	want = `plxfs: connection "ds": listing "ds:": bucket gs://no-such-bucket does not exist (HTTP 404); check schema.bucket of connection ds in ` + conf
	if res.Code != 1 || strings.TrimSpace(res.Stderr) != want {
		t.Errorf("missing bucket: exit %d, stderr %q; want %q", res.Code, res.Stderr, want)
	}
	res = runPlxfs(t, nil, "connections", "check", "--config", conf, "--endpoint", srv.URL())
	if lines := strings.Split(strings.TrimSpace(res.Stdout), "\n"); res.Code != 1 || len(lines) != 2 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.Contains(lines[1], "bucket gs://no-such-bucket does not exist") {
		t.Errorf("connections check: exit %d, stdout %q", res.Code, res.Stdout)
	}
}

// TestRmDeclined answers N at rm -r's prompt on a terminal: nothing is deleted and that is
// not a failure.
func TestRmDeclined(t *testing.T) {
	srv, common := storageSetup(t, emulator.Options{})
	for i := range 12 {
		if err := srv.PutObject(storageBucket, "pre/big/f"+string(rune('a'+i)), []byte("x"), ""); err != nil {
			t.Fatal(err)
		}
	}
	master, slave := openPTY(t)
	cmd := exec.Command(plxfsBin, append(append([]string{"rm", "-r"}, common...), "ds:big")...)
	cmd.SysProcAttr = dieWithTest()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = slave, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	// The prompt is written to stderr; answer once the question is out.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(stderr.String(), "[y/N]") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := master.Write([]byte("n\n")); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	if err != nil || !strings.Contains(stderr.String(), "nothing deleted") {
		t.Errorf("rm -r answered N: %v, stderr %q; want exit 0 and \"nothing deleted\"", err, stderr.String())
	}
	if names, _ := srv.ObjectNames(storageBucket, "pre/big/"); len(names) != 12 {
		t.Errorf("%d objects left, want 12", len(names))
	}
}

// openPTY opens a pseudo-terminal pair; the slave is a terminal for the child's stdin.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open /dev/ptmx: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open the pty slave: %v", err)
	}
	return m, s
}

// TestMountRefusesNonEmpty: a mountpoint with files is refused (exit 2) unless --nonempty.
func TestMountRefusesNonEmpty(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"data"}})
	conf := mountConf(t, map[string]string{"ds": "gs://data"})
	mnt := t.TempDir()
	if err := os.WriteFile(filepath.Join(mnt, "precious.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	res := runPlxfs(t, nil, "mount", "--config", conf, "--endpoint", srv.URL(), "--cache-dir", t.TempDir(), mnt)
	if res.Code != 2 || !strings.Contains(res.Stderr, "is not empty (precious.txt)") || !strings.Contains(res.Stderr, "--nonempty") {
		t.Fatalf("mount over a non-empty directory: exit %d, stderr %q", res.Code, res.Stderr)
	}
	d := startMount(t, srv, conf, mnt, t.TempDir(), "--nonempty")
	if _, err := os.Stat(filepath.Join(mnt, "ds")); err != nil {
		t.Errorf("--nonempty mount: %v", err)
	}
	if err := d.stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(mnt, "precious.txt")); string(got) != "mine" {
		t.Errorf("after the mount the file reads %q", got)
	}
}

// TestDemoOwnConnections: demo --config mounts a user's connections file (buckets created,
// --sample seeded), other commands reach it with the printed endpoint, and --keep keeps the
// data for the next run.
func TestDemoOwnConnections(t *testing.T) {
	conf := writeFile(t, "mine.yaml", "connections:\n- name: gcs-dataset1\n  kind: gcs\n  schema: {bucket: \"gs://gcs-datasets/path1\"}\n  secret: {name: gcs-secret, mountPath: /nonexistent/gcs}\n- name: out\n  kind: gcs\n  schema: {bucket: \"gs://outputs\"}\n")
	keep := filepath.Join(t.TempDir(), "keep")
	mnt := filepath.Join(t.TempDir(), "mnt")
	start := func(extra ...string) (*exec.Cmd, *lockedBuffer, chan error) {
		cmd := exec.Command(plxfsBin, append(append([]string{"demo", "--config", conf, "--keep", keep}, extra...), mnt)...)
		cmd.SysProcAttr = dieWithTest()
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
		stderr := &lockedBuffer{}
		cmd.Stderr = stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			cmd.Process.Kill()
			syscall.Unmount(mnt, syscall.MNT_DETACH)
		})
		if res := runPlxfs(t, nil, "wait", "--timeout", "30s", mnt); res.Code != 0 {
			t.Fatalf("plxfs wait: %s\ndemo stderr:\n%s", res.Stderr, stderr.String())
		}
		return cmd, stderr, done
	}
	stop := func(cmd *exec.Cmd, stderr *lockedBuffer, done chan error) string {
		cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo exited with %v\n%s", err, stderr.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("demo did not stop\n%s", stderr.String())
		}
		return stderr.String()
	}

	cmd, stderr, done := start("--sample")
	if got, err := os.ReadFile(filepath.Join(mnt, "gcs-dataset1", "README.md")); err != nil || !strings.Contains(string(got), "gcs-dataset1") {
		t.Errorf("sample README: %q, %v", got, err)
	}
	endpoint := between(stderr.String(), "--endpoint ", " ")
	if res := runPlxfs(t, nil, "ls", "--config", conf, "--endpoint", endpoint, "gcs-dataset1:sample"); res.Code != 0 || res.Stdout != "labels.csv\n" {
		t.Errorf("ls against the demo's emulator: exit %d, %q %q", res.Code, res.Stdout, res.Stderr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "out", "kept.txt"), []byte("kept"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := stop(cmd, stderr, done); !strings.Contains(out, "the emulator's data is kept in "+filepath.Join(keep, "emulator")) {
		t.Errorf("demo did not say where the data is:\n%s", out)
	}

	cmd, stderr, done = start()
	if got, err := os.ReadFile(filepath.Join(mnt, "out", "kept.txt")); err != nil || string(got) != "kept" {
		t.Errorf("after a restart with --keep: %q, %v", got, err)
	}
	stop(cmd, stderr, done)
}

// between is the text of s after the first start and before the next end.
func between(s, start, end string) string {
	_, rest, _ := strings.Cut(s, start)
	v, _, _ := strings.Cut(rest, end)
	return strings.TrimSpace(v)
}

// TestCompletionScripts: each script is valid for its shell, and the protocol it uses answers.
func TestCompletionScripts(t *testing.T) {
	res := runPlxfs(t, nil, "completion", "bash")
	mustCode(t, "completion bash", res, 0)
	script := writeFile(t, "plxfs.bash", res.Stdout)
	if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("bash -n: %v %s", err, out)
	}
	for _, sh := range []string{"zsh", "fish"} {
		if res := runPlxfs(t, nil, "completion", sh); res.Code != 0 || !strings.Contains(res.Stdout, "plxfs") {
			t.Errorf("completion %s: exit %d", sh, res.Code)
		}
	}
	if res := runPlxfs(t, nil, "--generate-bash-completion"); !strings.Contains(res.Stdout, "download\n") {
		t.Errorf("command candidates: %q", res.Stdout)
	}
	if res := runPlxfs(t, nil, "download", "--r", "--generate-bash-completion"); !strings.Contains(res.Stdout, "--raw") || strings.Contains(res.Stdout, "--compose-threshold") {
		t.Errorf("download flag candidates: %q", res.Stdout)
	}
}

// TestUnknownConnectionExits2 holds README's rule "an unknown connection is a usage error"
// for every command that takes a connection name, wherever the name is given (an argument,
// --connections, a polyaxonfile's run.connections), and for a selected connection plxfs
// cannot mount (kind s3): exit 2, the name in the message, nothing done.
func TestUnknownConnectionExits2(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{storageBucket}})
	conf := writeFile(t, "conns.yaml", "connections:\n"+
		"- name: ds\n  kind: gcs\n  schema: {bucket: \"gs://"+storageBucket+"/pre\"}\n"+
		"- name: s3data\n  kind: s3\n  schema: {bucket: \"s3://b\"}\n")
	common := []string{"--config", conf, "--endpoint", srv.URL()}
	pf := writeFile(t, "pf.yaml", "run:\n  kind: job\n  connections: [ds, nope]\n")
	local := writeFile(t, "f.txt", "f")
	mnt := t.TempDir()
	for _, name := range []string{"nope", "s3data"} {
		sel := []string{"--connections", "ds," + name}
		for _, tc := range []struct {
			what string
			args []string
		}{
			{"ls", []string{"ls", name + ":x"}},
			{"rm", []string{"rm", name + ":x"}},
			{"upload", []string{"upload", local, name + ":x"}},
			{"download", []string{"download", name + ":x", t.TempDir()}},
			{"init", []string{"init", "--connection", name, "--path", t.TempDir()}},
			{"connections check NAME", []string{"connections", "check", name}},
			{"connections check --connections", append([]string{"connections", "check"}, sel...)},
			{"connections list --connections", append([]string{"connections", "list"}, sel...)},
			{"mount --connections", append([]string{"mount", "--cache-dir", t.TempDir()}, append(sel, mnt)...)},
			{"kube sidecar --connections", append([]string{"kube", "sidecar", "--image", "plxfs:x"}, sel...)},
			{"kube csi --connections", append([]string{"kube", "csi", "--image", "plxfs:x"}, sel...)},
		} {
			t.Run(name+"/"+tc.what, func(t *testing.T) {
				res := runPlxfs(t, nil, append(tc.args, common...)...)
				if res.Code != 2 || !strings.Contains(res.Stderr, `connection "`+name+`"`) {
					t.Errorf("plxfs %v: exit %d, stderr %q; want exit 2 naming connection %q", tc.args, res.Code, res.Stderr, name)
				}
			})
		}
	}
	t.Run("polyaxonfile run.connections", func(t *testing.T) {
		for _, args := range [][]string{
			{"mount", "--polyaxonfile", pf, "--cache-dir", t.TempDir(), mnt},
			{"connections", "list", "--polyaxonfile", pf},
			{"kube", "sidecar", "--image", "plxfs:x", "--polyaxonfile", pf},
		} {
			res := runPlxfs(t, nil, append(args, common...)...)
			if res.Code != 2 || !strings.Contains(res.Stderr, `connection "nope"`) {
				t.Errorf("plxfs %v: exit %d, stderr %q; want exit 2 naming connection \"nope\"", args, res.Code, res.Stderr)
			}
		}
	})
	if ok, _ := isMounted(mnt); ok {
		t.Error("mounted despite the unknown connection")
	}
	if names, _ := srv.ObjectNames(storageBucket, ""); len(names) != 0 {
		t.Errorf("objects written despite the unknown connection: %v", names)
	}
}
