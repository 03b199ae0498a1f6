package fs

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/plxfs/plxfs/internal/posixmd"
)

// TestSemantics_AttrChangesTakeThePatchAnswer: chmod, chown and touch of a file just written,
// one after the other, each land and each shows at once, on both emulator backends, also
// across a remount. fake-gcs-server's filesystem backend gives the object a new generation
// on every metadata patch (GCS and the memory backend keep it): the mount takes whatever the
// patch answers as the object's truth, and a patch writes only what its call changes, so a
// chown never writes back a mode read before the chmod. The new generation has the same
// bytes: cached bytes stay served, and a handle opened before the patch goes on reading.
func TestSemantics_AttrChangesTakeThePatchAnswer(t *testing.T) {
	for _, backend := range []string{"memory", "filesystem"} {
		t.Run(backend, func(t *testing.T) {
			e := newEnv(t, envOptions{backend: backend})
			dir := e.path("c", "")
			stamp, err := time.ParseInLocation("2006-01-02", "2001-02-03", time.UTC)
			if err != nil {
				t.Fatal(err)
			}
			type want struct {
				mode     uint32
				uid, gid uint32
				mtime    time.Time // zero: not checked
			}
			check := func(when string, w want) {
				t.Helper()
				st, err := lstat(e.path("c", "f"))
				if err != nil {
					t.Fatalf("%s: %v", when, err)
				}
				if st.Mode != unix.S_IFREG|w.mode || st.Uid != w.uid || st.Gid != w.gid {
					t.Fatalf("%s: mode %o owner %d:%d, want %o %d:%d", when, st.Mode, st.Uid, st.Gid, unix.S_IFREG|w.mode, w.uid, w.gid)
				}
				if !w.mtime.IsZero() && !tsTime(st.Mtim).Equal(w.mtime) {
					t.Fatalf("%s: mtime %v, want %v", when, tsTime(st.Mtim).UTC(), w.mtime)
				}
			}
			steps := []struct {
				cmd  string
				want want
			}{
				{"echo hi > f", want{mode: 0o644}},
				{"chmod 0600 f", want{mode: 0o600}},
				{"chown 1234:2345 f", want{mode: 0o600, uid: 1234, gid: 2345}},
				{"touch -d 2001-02-03 f", want{mode: 0o600, uid: 1234, gid: 2345, mtime: stamp}},
			}
			gens := map[int64]bool{}
			for _, s := range steps {
				cmd := exec.Command("sh", "-c", "umask 022 && "+s.cmd)
				cmd.Dir, cmd.Env = dir, append(os.Environ(), "TZ=UTC")
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("%s: %v: %s", s.cmd, err, out)
				}
				check(s.cmd, s.want)
				o, ok := e.get(testBucket, "f")
				if !ok {
					t.Fatalf("%s: object f missing", s.cmd)
				}
				gens[e.objectGen(testBucket, "f")] = true
				if string(o) != "hi\n" {
					t.Fatalf("%s: object holds %q", s.cmd, o)
				}
			}
			md := e.metadata(testBucket, "f")
			if md[posixmd.ModeKey] != "600" || md[posixmd.UIDKey] != "1234" || md[posixmd.GIDKey] != "2345" {
				t.Fatalf("object metadata %v: want mode 600, owner 1234:2345", md)
			}
			t.Logf("%s backend: %d generation(s) over the write and three patches", backend, len(gens))

			// The bytes cached at the upload are still the object's: served without a fetch
			// once the kernel's pages are gone.
			e.emu.ResetCounts()
			if err := dropPages(e.path("c", "f")); err != nil {
				t.Fatal(err)
			}
			if err := contentIs(e.path("c", "f"), "hi\n"); err != nil {
				t.Fatal(err)
			}
			if n := e.emu.Requests().MediaGets; n != 0 {
				t.Fatalf("reading a cached file after metadata patches fetched it %d times", n)
			}

			// A handle opened before a patch reads on, the rest of its bytes fetched (from
			// whatever generation the patch left) and checked as the same object's.
			big := randBytes(24, 3<<20+123)
			e.put(testBucket, "big", big)
			h, err := os.Open(e.path("c", "big"))
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 1<<20)
			if _, err := io.ReadFull(h, head); err != nil {
				h.Close()
				t.Fatal(err)
			}
			if err := chmod(e.path("c", "big"), 0o640); err != nil {
				h.Close()
				t.Fatal(err)
			}
			rest, err := io.ReadAll(h)
			h.Close() // before the remount, which waits for every handle
			if err != nil {
				t.Fatalf("read on after chmod: %v", err)
			}
			equalBytes(t, "big read across a chmod", append(head, rest...), big)

			e.remount()
			check("after remount", want{mode: 0o600, uid: 1234, gid: 2345, mtime: stamp})
			if err := all(contentIs(e.path("c", "f"), "hi\n"), modeIs(e.path("c", "big"), unix.S_IFREG|0o640)); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(e.path("c", "big"))
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("big after remount: %d bytes, %v", len(got), err)
			}
		})
	}
}

// dropPages drops the kernel's cached pages of the file at p, so that the next read reaches
// the mount.
func dropPages(p string) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// objectGen is the live generation of an object, read from the emulator.
func (e *testEnv) objectGen(bucket, name string) int64 {
	e.t.Helper()
	o, err := e.emu.GetObject(bucket, name)
	if err != nil {
		e.t.Fatalf("get %s: %v", name, err)
	}
	return o.Generation
}

// metadata is the user metadata of an object, read from the emulator.
func (e *testEnv) metadata(bucket, name string) map[string]string {
	e.t.Helper()
	o, err := e.emu.GetObject(bucket, name)
	if err != nil {
		e.t.Fatalf("get %s: %v", name, err)
	}
	return o.Metadata
}
