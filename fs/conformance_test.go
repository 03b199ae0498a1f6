package fs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// A POSIX conformance suite in pjdfstest's shape: one table per syscall, each case a setup,
// one call, the errno it must return (0: success) and a check of the state it must leave.
// Every case runs in its own directory of one mount; then the mount is restarted and every
// expectation is checked again: a failed call is repeated and must fail the same way (a
// failed call changes nothing), a check must still hold (what the call changed was kept in
// the bucket, not only in this mount's memory).
//
// The suite runs as root, like pjdfstest, on a mount with --allow-other; cases for other users
// run their call in a child process with that user's credentials (asUser), as pjdfstest does.

// pcase is one case of a syscall's table.
type pcase struct {
	name  string
	setup func(d string) error // d: the case's own, empty directory
	call  func(d string) error
	want  syscall.Errno
	check func(d string) error // nil: only the errno is checked
	// relist: after the remount, list d's tree before the check. A directory's link count is
	// known once its entries are (SEMANTICS.md): a restarted mount knows none until listed.
	relist bool
}

// pjdNobody is the unprivileged user (and group) of the cases run as another user.
const pjdNobody = 65534

// pjdTime is a time with nanoseconds that no clock of the test will produce.
var pjdTime = time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)

// pjdHelperEnv names the call a child process of the test binary makes (TestMain), as
// another user: its arguments are the process's.
const pjdHelperEnv = "PLXFS_PJD_CALL"

// TestMain runs the call named by pjdHelperEnv and exits with its errno (0: success, 255: not
// an errno, said on stderr), or the tests.
func TestMain(m *testing.M) {
	if call := os.Getenv(pjdHelperEnv); call != "" {
		err := pjdCall(call, os.Args[1:])
		var errno syscall.Errno
		switch {
		case err == nil:
			os.Exit(0)
		case errors.As(err, &errno) && errno < 255:
			os.Exit(int(errno))
		}
		fmt.Fprintln(os.Stderr, err)
		os.Exit(255)
	}
	code := m.Run()
	if pjdHelperDir != "" {
		os.RemoveAll(pjdHelperDir)
	}
	os.Exit(code)
}

// pjdCall makes one call of the cases run as another user (modes octal, ids and sizes decimal).
func pjdCall(call string, a []string) error {
	oct := func(i int) uint32 { v, _ := strconv.ParseUint(a[i], 8, 32); return uint32(v) }
	dec := func(i int) int { v, _ := strconv.Atoi(a[i]); return v }
	switch call {
	case "chmod":
		return chmod(a[0], oct(1))
	case "chown":
		return chown(a[0], dec(1), dec(2))
	case "utimes": // "now" (UTIME_NOW) or "explicit" (pjdTime)
		if a[1] == "now" {
			return utimes(a[0], utimeNow, utimeNow)
		}
		return utimes(a[0], ts(pjdTime), ts(pjdTime))
	case "create":
		return createExcl(a[0], oct(1))
	case "mkdir":
		return unix.Mkdir(a[0], oct(1))
	case "rmdir":
		return unix.Rmdir(a[0])
	case "unlink":
		return unix.Unlink(a[0])
	case "rename":
		return unix.Rename(a[0], a[1])
	case "truncate":
		return unix.Truncate(a[0], int64(dec(1)))
	case "symlink":
		return unix.Symlink(a[0], a[1])
	case "mknod":
		return unix.Mknod(a[0], oct(1), dec(2))
	case "mkfifo":
		return unix.Mkfifo(a[0], oct(1))
	case "stat":
		_, err := lstat(a[0])
		return err
	case "open": // flags: "r", "w" or "rw"
		flags := map[string]int{"r": unix.O_RDONLY, "w": unix.O_WRONLY, "rw": unix.O_RDWR}[a[1]]
		fd, err := unix.Open(a[0], flags, 0)
		if err != nil {
			return err
		}
		return unix.Close(fd)
	case "readdir":
		_, err := os.ReadDir(a[0])
		return err
	}
	return fmt.Errorf("unknown call %q", call)
}

var (
	pjdHelperOnce sync.Once
	pjdHelperDir  string // a copy of the test binary that other users may run; TestMain removes it
	pjdHelperBin  string
	pjdHelperErr  error
)

// pjdHelper is a copy of the test binary in a directory every user may enter (go test builds
// it in a private one).
func pjdHelper() (string, error) {
	pjdHelperOnce.Do(func() {
		dir, err := os.MkdirTemp("", "plxfs-pjd-")
		if err == nil {
			pjdHelperDir = dir
			err = os.Chmod(dir, 0o755)
		}
		var data []byte
		if err == nil {
			data, err = os.ReadFile(os.Args[0])
		}
		if err == nil {
			pjdHelperBin = filepath.Join(dir, "pjd-helper")
			err = os.WriteFile(pjdHelperBin, data, 0o755)
		}
		pjdHelperErr = err
	})
	return pjdHelperBin, pjdHelperErr
}

// asUser makes call in a child process whose real, effective and filesystem uid and gid are
// uid and gid, with no supplementary groups and no capabilities: another user, as pjdfstest
// runs its cases (such a process reaches the mount only with --allow-other). It returns the
// call's errno.
func asUser(uid, gid uint32, call string, args ...string) error {
	bin, err := pjdHelper()
	if err != nil {
		return fmt.Errorf("helper binary: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir, cmd.Env = "/", []string{pjdHelperEnv + "=" + call}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() > 0 && exit.ExitCode() < 255 {
		return syscall.Errno(exit.ExitCode())
	}
	if err != nil {
		return fmt.Errorf("%s %v as uid %d: %v: %s", call, args, uid, err, out)
	}
	return nil
}

// nobody makes call as the unprivileged user pjdNobody.
func nobody(call string, args ...string) error { return asUser(pjdNobody, pjdNobody, call, args...) }

// Setup and call helpers: each returns the syscall's error.

func mkfile(p string) error { return os.WriteFile(p, []byte("data"), 0o644) }

func mkfiles(ps ...string) error {
	for _, p := range ps {
		if err := mkfile(p); err != nil {
			return err
		}
	}
	return nil
}

func mkdirs(ps ...string) error {
	for _, p := range ps {
		if err := os.Mkdir(p, 0o755); err != nil {
			return err
		}
	}
	return nil
}

func chmod(p string, m uint32) error { return unix.Chmod(p, m) }

func chown(p string, uid, gid int) error { return unix.Lchown(p, uid, gid) }

func utimes(p string, at, mt unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{at, mt}, unix.AT_SYMLINK_NOFOLLOW)
}

func ts(t time.Time) unix.Timespec { return unix.NsecToTimespec(t.UnixNano()) }

func tsTime(x unix.Timespec) time.Time { return time.Unix(x.Sec, x.Nsec) }

var (
	utimeNow  = unix.Timespec{Nsec: unix.UTIME_NOW}
	utimeOmit = unix.Timespec{Nsec: unix.UTIME_OMIT}
)

func createExcl(p string, mode uint32) error {
	fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY, mode)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// seq runs steps in order and stops at the first error.
func seq(steps ...func() error) error {
	for _, s := range steps {
		if err := s(); err != nil {
			return err
		}
	}
	return nil
}

// Checks.

func lstat(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Lstat(p, &st)
	return st, err
}

// modeIs checks the whole st_mode: file type and permission bits.
func modeIs(p string, want uint32) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if st.Mode != want {
		return fmt.Errorf("%s: mode %o, want %o", filepath.Base(p), st.Mode, want)
	}
	return nil
}

func ownerIs(p string, uid, gid uint32) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if st.Uid != uid || st.Gid != gid {
		return fmt.Errorf("%s: owner %d:%d, want %d:%d", filepath.Base(p), st.Uid, st.Gid, uid, gid)
	}
	return nil
}

func mtimeIs(p string, want time.Time) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if got := tsTime(st.Mtim); !got.Equal(want) {
		return fmt.Errorf("%s: mtime %v, want %v", filepath.Base(p), got.UTC(), want.UTC())
	}
	return nil
}

func atimeIs(p string, want time.Time) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if got := tsTime(st.Atim); !got.Equal(want) {
		return fmt.Errorf("%s: atime %v, want %v", filepath.Base(p), got.UTC(), want.UTC())
	}
	return nil
}

// mtimeNear checks that the mtime is within a minute of now (UTIME_NOW, a write).
func mtimeNear(p string) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if d := time.Since(tsTime(st.Mtim)); d < -time.Minute || d > time.Minute {
		return fmt.Errorf("%s: mtime %v, want about now", filepath.Base(p), tsTime(st.Mtim))
	}
	return nil
}

func sizeIs(p string, want int64) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if st.Size != want {
		return fmt.Errorf("%s: size %d, want %d", filepath.Base(p), st.Size, want)
	}
	return nil
}

func contentIs(p, want string) error {
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if string(b) != want {
		return fmt.Errorf("%s: content %q, want %q", filepath.Base(p), b, want)
	}
	return nil
}

func absent(p string) error {
	if _, err := lstat(p); !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s: lstat gives %v, want ENOENT", filepath.Base(p), err)
	}
	return nil
}

func present(p string) error {
	_, err := lstat(p)
	return err
}

func all(checks ...error) error { return errors.Join(checks...) }

// linksAre checks st_nlink of each path (a directory: 2 + its subdirectories).
func linksAre(want uint64, ps ...string) error {
	var errs []error
	for _, p := range ps {
		st, err := lstat(p)
		if err == nil && st.Nlink != want {
			err = fmt.Errorf("%s: nlink %d, want %d", filepath.Base(p), st.Nlink, want)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pjdLong is a name one byte over NAME_MAX.
var pjdLong = strings.Repeat("x", 256)

// tooLong is the case of a call on a name over 255 bytes: ENAMETOOLONG, as a local disk says,
// not ENOENT.
func tooLong(call func(d string) error) pcase {
	return pcase{name: "name too long ENAMETOOLONG", call: call, want: unix.ENAMETOOLONG}
}

// timeMark remembers a time attribute of a path at setup, so that a check can ask whether the
// call moved it forward. The pause after it lets a millisecond clock tick.
type timeMark struct{ t time.Time }

func (m *timeMark) mtime(p string) error {
	return m.take(p, func(st unix.Stat_t) unix.Timespec { return st.Mtim })
}
func (m *timeMark) ctime(p string) error {
	return m.take(p, func(st unix.Stat_t) unix.Timespec { return st.Ctim })
}

func (m *timeMark) take(p string, f func(unix.Stat_t) unix.Timespec) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	m.t = tsTime(f(st))
	time.Sleep(20 * time.Millisecond)
	return nil
}

func (m *timeMark) mtimeAfter(p string) error {
	return m.after(p, "mtime", func(st unix.Stat_t) unix.Timespec { return st.Mtim })
}
func (m *timeMark) ctimeAfter(p string) error {
	return m.after(p, "ctime", func(st unix.Stat_t) unix.Timespec { return st.Ctim })
}

func (m *timeMark) after(p, what string, f func(unix.Stat_t) unix.Timespec) error {
	st, err := lstat(p)
	if err != nil {
		return err
	}
	if got := tsTime(f(st)); !got.After(m.t) {
		return fmt.Errorf("%s: %s %v, want after %v", filepath.Base(p), what, got.UTC(), m.t.UTC())
	}
	return nil
}

// pjdTables are the tables, by syscall.
func pjdTables() []struct {
	syscall string
	cases   []pcase
} {
	j := filepath.Join
	chmodCases := func() []pcase {
		var ct timeMark
		return []pcase{
			{name: "file 0600", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return chmod(j(d, "f"), 0o600) },
				check: func(d string) error { return all(modeIs(j(d, "f"), unix.S_IFREG|0o600), contentIs(j(d, "f"), "data")) }},
			{name: "dir 0700", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call:  func(d string) error { return chmod(j(d, "s"), 0o700) },
				check: func(d string) error { return modeIs(j(d, "s"), unix.S_IFDIR|0o700) }},
			{name: "setuid bit kept", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return chmod(j(d, "f"), 0o4755) },
				check: func(d string) error { return modeIs(j(d, "f"), unix.S_IFREG|0o4755) }},
			{name: "sticky dir", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call:  func(d string) error { return chmod(j(d, "s"), 0o1777) },
				check: func(d string) error { return modeIs(j(d, "s"), unix.S_IFDIR|0o1777) }},
			{name: "missing ENOENT", call: func(d string) error { return chmod(j(d, "none"), 0o600) }, want: unix.ENOENT},
			{name: "non-owner EPERM", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return nobody("chmod", j(d, "f"), "666") },
				want:  unix.EPERM,
				check: func(d string) error { return modeIs(j(d, "f"), unix.S_IFREG|0o644) }},
			{name: "owner, not root", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chown(j(d, "f"), pjdNobody, pjdNobody) })
			},
				call:  func(d string) error { return nobody("chmod", j(d, "f"), "640") },
				check: func(d string) error { return modeIs(j(d, "f"), unix.S_IFREG|0o640) }},
			{name: "updates ctime", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return ct.ctime(j(d, "f")) })
			},
				call:  func(d string) error { return chmod(j(d, "f"), 0o600) },
				check: func(d string) error { return ct.ctimeAfter(j(d, "f")) }},
			{name: "keeps mtime", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return utimes(j(d, "f"), ts(pjdTime), ts(pjdTime)) })
			},
				call:  func(d string) error { return chmod(j(d, "f"), 0o600) },
				check: func(d string) error { return all(mtimeIs(j(d, "f"), pjdTime), modeIs(j(d, "f"), unix.S_IFREG|0o600)) }},
			tooLong(func(d string) error { return chmod(j(d, pjdLong), 0o600) }),
		}
	}
	chownCases := func() []pcase {
		return []pcase{
			{name: "file by root", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return chown(j(d, "f"), 1234, 5678) },
				check: func(d string) error { return all(ownerIs(j(d, "f"), 1234, 5678), contentIs(j(d, "f"), "data")) }},
			{name: "dir by root", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call:  func(d string) error { return chown(j(d, "s"), 1234, 5678) },
				check: func(d string) error { return ownerIs(j(d, "s"), 1234, 5678) }},
			{name: "gid only", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return chown(j(d, "f"), -1, 5678) },
				check: func(d string) error { return ownerIs(j(d, "f"), 0, 5678) }},
			{name: "-1 -1 changes nothing", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return chown(j(d, "f"), -1, -1) },
				check: func(d string) error { return ownerIs(j(d, "f"), 0, 0) }},
			{name: "symlink itself (lchown)", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return os.Symlink("f", j(d, "l")) })
			},
				call:  func(d string) error { return chown(j(d, "l"), 1234, 5678) },
				check: func(d string) error { return all(ownerIs(j(d, "l"), 1234, 5678), ownerIs(j(d, "f"), 0, 0)) }},
			{name: "non-owner EPERM", setup: func(d string) error { return mkfile(j(d, "f")) },
				call:  func(d string) error { return nobody("chown", j(d, "f"), "65534", "65534") },
				want:  unix.EPERM,
				check: func(d string) error { return ownerIs(j(d, "f"), 0, 0) }},
			{name: "owner gives away EPERM", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chown(j(d, "f"), pjdNobody, pjdNobody) })
			},
				call:  func(d string) error { return nobody("chown", j(d, "f"), "1234", "-1") },
				want:  unix.EPERM,
				check: func(d string) error { return ownerIs(j(d, "f"), pjdNobody, pjdNobody) }},
			{name: "clears setuid", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o4755) })
			},
				call:  func(d string) error { return chown(j(d, "f"), 1234, 5678) },
				check: func(d string) error { return modeIs(j(d, "f"), unix.S_IFREG|0o755) }},
			{name: "missing ENOENT", call: func(d string) error { return chown(j(d, "none"), 1, 1) }, want: unix.ENOENT},
			tooLong(func(d string) error { return chown(j(d, pjdLong), 1, 1) }),
		}
	}
	utimensCases := func() []pcase {
		return []pcase{
			{name: "file atime and mtime", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return utimes(j(d, "f"), ts(pjdTime.Add(time.Hour)), ts(pjdTime)) },
				check: func(d string) error {
					return all(mtimeIs(j(d, "f"), pjdTime), atimeIs(j(d, "f"), pjdTime.Add(time.Hour)))
				}},
			{name: "UTIME_NOW", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return utimes(j(d, "f"), ts(pjdTime), ts(pjdTime)) })
			},
				call:  func(d string) error { return utimes(j(d, "f"), utimeNow, utimeNow) },
				check: func(d string) error { return mtimeNear(j(d, "f")) }},
			{name: "UTIME_OMIT mtime", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return utimes(j(d, "f"), ts(pjdTime), ts(pjdTime)) })
			},
				call: func(d string) error { return utimes(j(d, "f"), ts(pjdTime.Add(time.Hour)), utimeOmit) },
				check: func(d string) error {
					return all(mtimeIs(j(d, "f"), pjdTime), atimeIs(j(d, "f"), pjdTime.Add(time.Hour)))
				}},
			{name: "directory", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call:  func(d string) error { return utimes(j(d, "s"), ts(pjdTime), ts(pjdTime)) },
				check: func(d string) error { return mtimeIs(j(d, "s"), pjdTime) }},
			{name: "symlink itself", setup: func(d string) error { return os.Symlink("nowhere", j(d, "l")) },
				call:  func(d string) error { return utimes(j(d, "l"), ts(pjdTime), ts(pjdTime)) },
				check: func(d string) error { return mtimeIs(j(d, "l"), pjdTime) }},
			{name: "non-owner explicit EPERM", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o666) })
			},
				call: func(d string) error {
					return nobody("utimes", j(d, "f"), "explicit")
				},
				want: unix.EPERM},
			{name: "non-owner UTIME_NOW no write EACCES", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return nobody("utimes", j(d, "f"), "now") },
				want: unix.EACCES},
			{name: "non-owner UTIME_NOW with write", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o666) }, func() error { return utimes(j(d, "f"), ts(pjdTime), ts(pjdTime)) })
			},
				call:  func(d string) error { return nobody("utimes", j(d, "f"), "now") },
				check: func(d string) error { return mtimeNear(j(d, "f")) }},
			{name: "missing ENOENT", call: func(d string) error { return utimes(j(d, "none"), utimeNow, utimeNow) }, want: unix.ENOENT},
		}
	}
	openCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "new file, mode", call: func(d string) error { return createExcl(j(d, "f"), 0o640) },
				check: func(d string) error { return all(modeIs(j(d, "f"), unix.S_IFREG|0o640), sizeIs(j(d, "f"), 0)) }},
			{name: "existing file EEXIST", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return createExcl(j(d, "f"), 0o644) }, want: unix.EEXIST,
				check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "existing dir EEXIST", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return createExcl(j(d, "s"), 0o644) }, want: unix.EEXIST},
			{name: "dangling symlink EEXIST", setup: func(d string) error { return os.Symlink("nowhere", j(d, "l")) },
				call: func(d string) error { return createExcl(j(d, "l"), 0o644) }, want: unix.EEXIST,
				check: func(d string) error { return absent(j(d, "nowhere")) }},
			{name: "parent missing ENOENT", call: func(d string) error { return createExcl(j(d, "none", "f"), 0o644) }, want: unix.ENOENT},
			{name: "name too long ENAMETOOLONG", call: func(d string) error { return createExcl(j(d, strings.Repeat("x", 256)), 0o644) }, want: unix.ENAMETOOLONG},
			{name: "no write permission EACCES", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return nobody("create", j(d, "s", "f"), "644") },
				want: unix.EACCES, check: func(d string) error { return absent(j(d, "s", "f")) }},
			{name: "owned by the creator", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o777) })
			},
				call:  func(d string) error { return nobody("create", j(d, "s", "f"), "644") },
				check: func(d string) error { return ownerIs(j(d, "s", "f"), pjdNobody, pjdNobody) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return createExcl(j(d, "s", "f"), 0o644) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
		}
	}
	mkdirCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "new, mode", call: func(d string) error { return os.Mkdir(j(d, "s"), 0o750) },
				check: func(d string) error { return modeIs(j(d, "s"), unix.S_IFDIR|0o750) }},
			{name: "existing EEXIST", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return os.Mkdir(j(d, "s"), 0o755) }, want: unix.EEXIST},
			{name: "over a file EEXIST", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return os.Mkdir(j(d, "f"), 0o755) }, want: unix.EEXIST,
				check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "parent missing ENOENT", call: func(d string) error { return os.Mkdir(j(d, "none", "s"), 0o755) }, want: unix.ENOENT},
			{name: "under a file ENOTDIR", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return os.Mkdir(j(d, "f", "s"), 0o755) }, want: unix.ENOTDIR},
			{name: "no write permission EACCES", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return nobody("mkdir", j(d, "s", "t"), "755") },
				want: unix.EACCES, check: func(d string) error { return absent(j(d, "s", "t")) }},
			{name: "owned by the creator", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o777) })
			},
				call:  func(d string) error { return nobody("mkdir", j(d, "s", "t"), "755") },
				check: func(d string) error { return ownerIs(j(d, "s", "t"), pjdNobody, pjdNobody) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return os.Mkdir(j(d, "s", "t"), 0o755) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
			{name: "nlink: 2, and one more in the parent", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return os.Mkdir(j(d, "s", "t"), 0o755) }, relist: true,
				check: func(d string) error { return all(linksAre(3, j(d, "s")), linksAre(2, j(d, "s", "t"))) }},
			{name: "a file is no link of the parent", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return mkfile(j(d, "s", "f")) }, relist: true,
				check: func(d string) error { return all(linksAre(2, j(d, "s")), linksAre(1, j(d, "s", "f"))) }},
		}
	}
	rmdirCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "empty", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return unix.Rmdir(j(d, "s")) }, check: func(d string) error { return absent(j(d, "s")) }},
			{name: "not empty ENOTEMPTY", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) })
			},
				call: func(d string) error { return unix.Rmdir(j(d, "s")) }, want: unix.ENOTEMPTY,
				check: func(d string) error { return contentIs(j(d, "s", "f"), "data") }},
			{name: "a file ENOTDIR", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Rmdir(j(d, "f")) }, want: unix.ENOTDIR},
			{name: "missing ENOENT", call: func(d string) error { return unix.Rmdir(j(d, "none")) }, want: unix.ENOENT},
			{name: "no write permission EACCES", setup: func(d string) error { return mkdirs(j(d, "s"), j(d, "s", "t")) },
				call: func(d string) error { return nobody("rmdir", j(d, "s", "t")) },
				want: unix.EACCES, check: func(d string) error { return present(j(d, "s", "t")) }},
			{name: "sticky dir, not owner EPERM", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s"), j(d, "s", "t")) }, func() error { return chmod(j(d, "s"), 0o1777) })
			},
				call: func(d string) error { return nobody("rmdir", j(d, "s", "t")) },
				want: unix.EPERM, check: func(d string) error { return present(j(d, "s", "t")) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s"), j(d, "s", "t")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return unix.Rmdir(j(d, "s", "t")) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
			tooLong(func(d string) error { return unix.Rmdir(j(d, pjdLong)) }),
			{name: "parent nlink drops", setup: func(d string) error { return mkdirs(j(d, "s"), j(d, "s", "t"), j(d, "s", "u")) },
				call: func(d string) error { return unix.Rmdir(j(d, "s", "t")) }, relist: true,
				check: func(d string) error { return all(linksAre(3, j(d, "s")), linksAre(2, j(d, "s", "u"))) }},
		}
	}
	unlinkCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "file", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Unlink(j(d, "f")) }, check: func(d string) error { return absent(j(d, "f")) }},
			{name: "a dir EISDIR", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return unix.Unlink(j(d, "s")) }, want: unix.EISDIR, check: func(d string) error { return present(j(d, "s")) }},
			{name: "missing ENOENT", call: func(d string) error { return unix.Unlink(j(d, "none")) }, want: unix.ENOENT},
			{name: "symlink, not its target", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return os.Symlink("f", j(d, "l")) })
			},
				call: func(d string) error { return unix.Unlink(j(d, "l")) }, check: func(d string) error { return all(absent(j(d, "l")), contentIs(j(d, "f"), "data")) }},
			{name: "fifo", setup: func(d string) error { return unix.Mkfifo(j(d, "p"), 0o644) },
				call: func(d string) error { return unix.Unlink(j(d, "p")) }, check: func(d string) error { return absent(j(d, "p")) }},
			{name: "no write permission EACCES", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) })
			},
				call: func(d string) error { return nobody("unlink", j(d, "s", "f")) },
				want: unix.EACCES, check: func(d string) error { return present(j(d, "s", "f")) }},
			{name: "sticky dir, not owner EPERM", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o1777) }, func() error { return mkfile(j(d, "s", "f")) })
			},
				call: func(d string) error { return nobody("unlink", j(d, "s", "f")) },
				want: unix.EPERM, check: func(d string) error { return present(j(d, "s", "f")) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return unix.Unlink(j(d, "s", "f")) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
			tooLong(func(d string) error { return unix.Unlink(j(d, pjdLong)) }),
		}
	}
	renameCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "file", setup: func(d string) error { return mkfile(j(d, "a")) },
				call:  func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) },
				check: func(d string) error { return all(absent(j(d, "a")), contentIs(j(d, "b"), "data")) }},
			{name: "onto a file replaces it", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "a")) }, func() error { return os.WriteFile(j(d, "b"), []byte("old"), 0o644) })
			},
				call:  func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) },
				check: func(d string) error { return all(absent(j(d, "a")), contentIs(j(d, "b"), "data")) }},
			{name: "keeps mode, owner and mtime", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "a")) }, func() error { return chmod(j(d, "a"), 0o600) }, func() error { return chown(j(d, "a"), 1234, 5678) }, func() error { return utimes(j(d, "a"), ts(pjdTime), ts(pjdTime)) })
			},
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) },
				check: func(d string) error {
					return all(modeIs(j(d, "b"), unix.S_IFREG|0o600), ownerIs(j(d, "b"), 1234, 5678), mtimeIs(j(d, "b"), pjdTime))
				}},
			{name: "dir onto non-empty dir ENOTEMPTY", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "a"), j(d, "b")) }, func() error { return mkfile(j(d, "b", "f")) })
			},
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) }, want: unix.ENOTEMPTY,
				check: func(d string) error { return all(present(j(d, "a")), present(j(d, "b", "f"))) }},
			{name: "file onto dir EISDIR", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "a")) }, func() error { return mkdirs(j(d, "b")) })
			},
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) }, want: unix.EISDIR},
			{name: "dir onto file ENOTDIR", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "a")) }, func() error { return mkfile(j(d, "b")) })
			},
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) }, want: unix.ENOTDIR},
			{name: "dir into itself EINVAL", setup: func(d string) error { return mkdirs(j(d, "a")) },
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "a", "b")) }, want: unix.EINVAL},
			{name: "missing ENOENT", call: func(d string) error { return unix.Rename(j(d, "none"), j(d, "b")) }, want: unix.ENOENT},
			{name: "sticky dir, not owner EPERM", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o1777) }, func() error { return mkfile(j(d, "s", "f")) })
			},
				call: func(d string) error {
					return nobody("rename", j(d, "s", "f"), j(d, "s", "g"))
				},
				want: unix.EPERM, check: func(d string) error { return all(present(j(d, "s", "f")), absent(j(d, "s", "g"))) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return unix.Rename(j(d, "s", "f"), j(d, "s", "g")) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
			{name: "source name too long ENAMETOOLONG", call: func(d string) error { return unix.Rename(j(d, pjdLong), j(d, "b")) }, want: unix.ENAMETOOLONG},
			{name: "target name too long ENAMETOOLONG", setup: func(d string) error { return mkfile(j(d, "a")) },
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, pjdLong)) }, want: unix.ENAMETOOLONG,
				check: func(d string) error { return contentIs(j(d, "a"), "data") }},
			{name: "dir to another parent moves a link", setup: func(d string) error { return mkdirs(j(d, "a"), j(d, "b"), j(d, "a", "s")) },
				call: func(d string) error { return unix.Rename(j(d, "a", "s"), j(d, "b", "s")) }, relist: true,
				check: func(d string) error { return all(linksAre(2, j(d, "a"), j(d, "b", "s")), linksAre(3, j(d, "b"))) }},
			{name: "dir keeps its links", setup: func(d string) error { return mkdirs(j(d, "a"), j(d, "a", "s")) },
				call: func(d string) error { return unix.Rename(j(d, "a"), j(d, "b")) }, relist: true,
				check: func(d string) error { return all(linksAre(3, j(d, "b")), linksAre(2, j(d, "b", "s"))) }},
		}
	}
	truncateCases := func() []pcase {
		return []pcase{
			{name: "shrink", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Truncate(j(d, "f"), 2) }, check: func(d string) error { return contentIs(j(d, "f"), "da") }},
			{name: "grow", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Truncate(j(d, "f"), 6) }, check: func(d string) error { return contentIs(j(d, "f"), "data\x00\x00") }},
			{name: "a dir EISDIR", setup: func(d string) error { return mkdirs(j(d, "s")) },
				call: func(d string) error { return unix.Truncate(j(d, "s"), 0) }, want: unix.EISDIR},
			{name: "missing ENOENT", call: func(d string) error { return unix.Truncate(j(d, "none"), 0) }, want: unix.ENOENT},
			{name: "no write permission EACCES", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return nobody("truncate", j(d, "f"), "0") },
				want: unix.EACCES, check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "updates mtime", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return utimes(j(d, "f"), ts(pjdTime), ts(pjdTime)) })
			},
				call: func(d string) error { return unix.Truncate(j(d, "f"), 1) }, check: func(d string) error { return mtimeNear(j(d, "f")) }},
			{name: "keeps mode and owner", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o640) }, func() error { return chown(j(d, "f"), 1234, 5678) })
			},
				call: func(d string) error { return unix.Truncate(j(d, "f"), 1) },
				check: func(d string) error {
					return all(modeIs(j(d, "f"), unix.S_IFREG|0o640), ownerIs(j(d, "f"), 1234, 5678), sizeIs(j(d, "f"), 1))
				}},
			tooLong(func(d string) error { return unix.Truncate(j(d, pjdLong), 0) }),
			{name: "ftruncate: open of a name too long ENAMETOOLONG", call: func(d string) error {
				fd, err := unix.Open(j(d, pjdLong), unix.O_RDWR, 0)
				if err == nil {
					err = errors.Join(unix.Ftruncate(fd, 0), unix.Close(fd))
				}
				return err
			}, want: unix.ENAMETOOLONG},
		}
	}
	symlinkCases := func() []pcase {
		var pm timeMark
		return []pcase{
			{name: "new", call: func(d string) error { return unix.Symlink("some/target", j(d, "l")) },
				check: func(d string) error {
					got, err := os.Readlink(j(d, "l"))
					if err == nil && got != "some/target" {
						err = fmt.Errorf("readlink %q", got)
					}
					return all(err, modeIs(j(d, "l"), unix.S_IFLNK|0o777))
				}},
			{name: "existing EEXIST", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Symlink("x", j(d, "f")) }, want: unix.EEXIST,
				check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "parent missing ENOENT", call: func(d string) error { return unix.Symlink("x", j(d, "none", "l")) }, want: unix.ENOENT},
			{name: "name too long ENAMETOOLONG", call: func(d string) error { return unix.Symlink("x", j(d, strings.Repeat("l", 256))) }, want: unix.ENAMETOOLONG},
			{name: "owned by the creator", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o777) })
			},
				call:  func(d string) error { return nobody("symlink", "x", j(d, "s", "l")) },
				check: func(d string) error { return ownerIs(j(d, "s", "l"), pjdNobody, pjdNobody) }},
			{name: "updates parent mtime", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return pm.mtime(j(d, "s")) })
			},
				call:  func(d string) error { return unix.Symlink("x", j(d, "s", "l")) },
				check: func(d string) error { return pm.mtimeAfter(j(d, "s")) }},
		}
	}
	mknodCases := func() []pcase {
		rdevIs := func(p string, major, minor uint32) error {
			st, err := lstat(p)
			if err == nil && st.Rdev != unix.Mkdev(major, minor) {
				err = fmt.Errorf("%s: rdev %d:%d, want %d:%d", filepath.Base(p), unix.Major(st.Rdev), unix.Minor(st.Rdev), major, minor)
			}
			return err
		}
		return []pcase{
			{name: "mkfifo", call: func(d string) error { return unix.Mkfifo(j(d, "p"), 0o640) },
				check: func(d string) error { return modeIs(j(d, "p"), unix.S_IFIFO|0o640) }},
			{name: "fifo carries data", setup: func(d string) error { return unix.Mkfifo(j(d, "p"), 0o644) },
				call: func(d string) error {
					// O_RDWR on a FIFO does not wait for a peer (Linux): the kernel's pipe.
					f, err := os.OpenFile(j(d, "p"), os.O_RDWR, 0)
					if err != nil {
						return err
					}
					defer f.Close()
					if _, err := f.Write([]byte("hi")); err != nil {
						return err
					}
					b := make([]byte, 2)
					if _, err := f.Read(b); err != nil || string(b) != "hi" {
						return fmt.Errorf("read %q from the fifo: %w", b, err)
					}
					return nil
				},
				check: func(d string) error { return modeIs(j(d, "p"), unix.S_IFIFO|0o644) }},
			{name: "mkfifo existing EEXIST", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return unix.Mkfifo(j(d, "f"), 0o644) }, want: unix.EEXIST,
				check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "char device", call: func(d string) error { return unix.Mknod(j(d, "c"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 3))) },
				check: func(d string) error { return all(modeIs(j(d, "c"), unix.S_IFCHR|0o600), rdevIs(j(d, "c"), 1, 3)) }},
			{name: "block device", call: func(d string) error { return unix.Mknod(j(d, "b"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 42))) },
				check: func(d string) error { return all(modeIs(j(d, "b"), unix.S_IFBLK|0o600), rdevIs(j(d, "b"), 7, 42)) }},
			{name: "socket", call: func(d string) error { return unix.Mknod(j(d, "s"), unix.S_IFSOCK|0o644, 0) },
				check: func(d string) error { return modeIs(j(d, "s"), unix.S_IFSOCK|0o644) }},
			{name: "regular file", call: func(d string) error { return unix.Mknod(j(d, "r"), unix.S_IFREG|0o600, 0) },
				check: func(d string) error { return all(modeIs(j(d, "r"), unix.S_IFREG|0o600), sizeIs(j(d, "r"), 0)) }},
			{name: "device as non-root EPERM", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o777) })
			},
				call: func(d string) error {
					return nobody("mknod", j(d, "s", "c"), "20600", "259")
				},
				want: unix.EPERM, check: func(d string) error { return absent(j(d, "s", "c")) }},
			{name: "fifo as non-root, owned by the creator", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return chmod(j(d, "s"), 0o777) })
			},
				call: func(d string) error { return nobody("mkfifo", j(d, "s", "p"), "644") },
				check: func(d string) error {
					return all(modeIs(j(d, "s", "p"), unix.S_IFIFO|0o644), ownerIs(j(d, "s", "p"), pjdNobody, pjdNobody))
				}},
		}
	}
	otherUserCases := func() []pcase {
		return []pcase{
			{name: "read of a 0600 file EACCES", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o600) })
			},
				call: func(d string) error { return nobody("open", j(d, "f"), "r") }, want: unix.EACCES},
			{name: "write of a 0644 file EACCES", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return nobody("open", j(d, "f"), "w") }, want: unix.EACCES,
				check: func(d string) error { return contentIs(j(d, "f"), "data") }},
			{name: "read of a 0644 file", setup: func(d string) error { return mkfile(j(d, "f")) },
				call: func(d string) error { return nobody("open", j(d, "f"), "r") }},
			{name: "write of a 0666 file", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chmod(j(d, "f"), 0o666) })
			},
				call: func(d string) error { return nobody("open", j(d, "f"), "rw") }},
			{name: "no search permission EACCES", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) }, func() error { return chmod(j(d, "s"), 0o700) })
			},
				call: func(d string) error { return nobody("stat", j(d, "s", "f")) }, want: unix.EACCES},
			{name: "search without read: readdir EACCES", setup: func(d string) error {
				return seq(func() error { return mkdirs(j(d, "s")) }, func() error { return mkfile(j(d, "s", "f")) }, func() error { return chmod(j(d, "s"), 0o711) })
			},
				call: func(d string) error { return nobody("readdir", j(d, "s")) }, want: unix.EACCES,
				check: func(d string) error { return nobody("stat", j(d, "s", "f")) }},
			{name: "group permission of a member", setup: func(d string) error {
				return seq(func() error { return mkfile(j(d, "f")) }, func() error { return chown(j(d, "f"), 0, pjdNobody) }, func() error { return chmod(j(d, "f"), 0o640) })
			},
				call: func(d string) error { return nobody("open", j(d, "f"), "r") }},
		}
	}
	return []struct {
		syscall string
		cases   []pcase
	}{
		{"chmod", chmodCases()}, {"chown", chownCases()}, {"utimensat", utimensCases()},
		{"open_creat_excl", openCases()}, {"mkdir", mkdirCases()}, {"rmdir", rmdirCases()},
		{"unlink", unlinkCases()}, {"rename", renameCases()}, {"truncate", truncateCases()},
		{"symlink", symlinkCases()}, {"mknod_mkfifo", mknodCases()}, {"open_other_user", otherUserCases()},
	}
}

// TestPOSIXConformance runs every table on one mount per syscall, checks each case, restarts
// the mount and checks each case again. It logs passed/total per syscall.
func TestPOSIXConformance(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("the conformance suite runs as root (like pjdfstest), to act as other users too")
	}
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	var summary []string
	for _, table := range pjdTables() {
		t.Run(table.syscall, func(t *testing.T) {
			e := newEnv(t, envOptions{allowOther: true})
			// t.TempDir makes 0700 directories: let other users reach the mountpoint.
			for p := filepath.Dir(e.mnt); p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()) && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
				if err := os.Chmod(p, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			root := e.path("c", "pjd")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			failed := make([]string, len(table.cases))
			dirOf := func(i int) string { return filepath.Join(root, fmt.Sprintf("case%02d", i)) }
			for i, c := range table.cases {
				d := dirOf(i)
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if c.setup != nil {
					if err := c.setup(d); err != nil {
						failed[i] = fmt.Sprintf("setup: %v", err)
						continue
					}
				}
				failed[i] = runCase(c, d, "")
			}
			e.remount()
			for i, c := range table.cases {
				if failed[i] != "" {
					continue
				}
				if c.relist {
					if err := listTree(dirOf(i)); err != nil {
						failed[i] = fmt.Sprintf("after remount: list: %v", err)
						continue
					}
				}
				failed[i] = runCase(c, dirOf(i), "after remount: ")
			}
			passed := 0
			for i, c := range table.cases {
				if failed[i] == "" {
					passed++
					continue
				}
				t.Errorf("%s: %s: %s", table.syscall, c.name, failed[i])
			}
			line := fmt.Sprintf("%s: %d/%d passed", table.syscall, passed, len(table.cases))
			t.Log(line)
			summary = append(summary, line)
		})
	}
	t.Logf("POSIX conformance:\n  %s", strings.Join(summary, "\n  "))
}

// listTree lists every directory from d down, as ls -R does.
func listTree(d string) error {
	entries, err := os.ReadDir(d)
	for _, e := range entries {
		if err == nil && e.IsDir() {
			err = listTree(filepath.Join(d, e.Name()))
		}
	}
	return err
}

// runCase checks one case: the call (a failing call is repeated after a remount, a successful
// one is not) and the state it leaves. It returns "" when the case passes.
func runCase(c pcase, d, when string) string {
	if when == "" || c.want != 0 {
		err := c.call(d)
		var got syscall.Errno
		if err != nil && !errors.As(err, &got) {
			return fmt.Sprintf("%scall: %v (not an errno)", when, err)
		}
		if got != c.want {
			return fmt.Sprintf("%scall returned %v (%d), want %v (%d)", when, errName(got), got, errName(c.want), c.want)
		}
	}
	if c.check != nil {
		if err := c.check(d); err != nil {
			return fmt.Sprintf("%scheck: %v", when, err)
		}
	}
	return ""
}

func errName(e syscall.Errno) string {
	if e == 0 {
		return "success"
	}
	if n := unix.ErrnoName(e); n != "" {
		return n
	}
	return e.Error()
}

// TestPOSIXPrivateWithoutAllowOther: without --allow-other only the mounting user (and root's
// own processes) reach the mount; another user's calls are refused with EACCES by the kernel,
// whatever the modes say. TestPOSIXConformance runs those users with --allow-other.
func TestPOSIXPrivateWithoutAllowOther(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatalf("runs as root, to act as another user")
	}
	e := newEnv(t, envOptions{})
	for p := filepath.Dir(e.mnt); p != filepath.Dir(p) && strings.HasPrefix(p, os.TempDir()) && p != filepath.Clean(os.TempDir()); p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := e.path("c", "f")
	if err := all(mkfile(f), chmod(f, 0o666)); err != nil {
		t.Fatal(err)
	}
	for _, call := range [][]string{{"stat", f}, {"open", f, "r"}, {"readdir", e.path("c", "")}} {
		if err := nobody(call[0], call[1:]...); !errors.Is(err, unix.EACCES) {
			t.Errorf("%v as uid %d without --allow-other: %v, want EACCES", call, pjdNobody, err)
		}
	}
	if err := contentIs(f, "data"); err != nil {
		t.Fatalf("the mounting user: %v", err)
	}
}
