package fs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/transfer"
)

// smallUploads makes composed uploads kick in at 4 MiB (parts of 1 MiB), so tests exercise both
// upload paths without big files.
var smallUploads = transfer.Options{ChunkSize: 256 << 10, ComposeThreshold: 4 << 20, PartSize: 1 << 20, Workers: 4}

func TestWriteSizes(t *testing.T) {
	const chunk = 1 << 20
	e := newEnv(t, envOptions{chunkSize: chunk, upload: smallUploads})
	if err := os.Mkdir(e.path("c", "w"), 0o755); err != nil {
		t.Fatal(err)
	}
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 9*chunk + 3} // the last one is composed
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			data := randBytes(uint64(100+i), n)
			name := fmt.Sprintf("w/f%d", n)
			mustWrite(t, e.path("c", name), data)
			got, ok := e.get(testBucket, name)
			if !ok {
				t.Fatalf("object %s not in the bucket after close", name)
			}
			equalBytes(t, "object in the bucket", got, data)
			equalBytes(t, "read back through the mount", mustRead(t, e.path("c", name)), data)
		})
	}
	if parts, _ := e.emu.ObjectNames(testBucket, ".plxfs-tmp/"); len(parts) != 0 {
		t.Fatalf("temporary parts left: %v", parts)
	}
}

// TestSemantics_ReadYourWrites: after close, the mount serves the new generation from the
// cache, without fetching what it just uploaded.
func TestSemantics_ReadYourWrites(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	e.put(testBucket, "ryw", []byte("old"))
	p := e.path("c", "ryw")
	equalBytes(t, "old", mustRead(t, p), []byte("old"))
	data := randBytes(4, 3*chunk+5)
	mustWrite(t, p, data)
	e.emu.ResetCounts()
	equalBytes(t, "after the write", mustRead(t, p), data)
	if reads := e.emu.Requests().ReadsOf(testBucket, "ryw"); len(reads) != 0 {
		t.Fatalf("the written bytes were fetched again: %v", reads)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("stat after write: %v %v", fi, err)
	}
}

// TestSemantics_OverwriteInPlace: random writes into an existing object keep the unchanged
// ranges (taken from the read cache) and O_TRUNC replaces the content.
func TestSemantics_OverwriteInPlace(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	orig := randBytes(8, 5*chunk)
	e.put(testBucket, "patch.bin", orig)
	p := e.path("c", "patch.bin")
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(orig)
	for _, off := range []int64{10, chunk - 3, 3*chunk + 100, int64(len(orig)) - 2} {
		patch := []byte("PATCHED")
		if _, err := f.WriteAt(patch, off); err != nil {
			t.Fatal(err)
		}
		end := off + int64(len(patch))
		if end > int64(len(want)) {
			want = append(want[:off], patch...)
		} else {
			copy(want[off:], patch)
		}
	}
	buf := make([]byte, len(want))
	if _, err := f.ReadAt(buf, 0); err != nil {
		t.Fatalf("read through the writing handle: %v", err)
	}
	equalBytes(t, "read before close", buf, want)
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := e.get(testBucket, "patch.bin")
	equalBytes(t, "patched object", got, want)

	f, err = os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("short"))
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ = e.get(testBucket, "patch.bin")
	equalBytes(t, "truncated object", got, []byte("short"))
	equalBytes(t, "truncated through the mount", mustRead(t, p), []byte("short"))
}

// TestSemantics_ConcurrentOverwriteFailsESTALE: when the object changes in the bucket while
// this mount has it open for writing, the upload's generation precondition fails and close
// returns ESTALE; the other writer's object is not clobbered.
func TestSemantics_ConcurrentOverwriteFailsESTALE(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.syncErrOK = true // the refused changes stay staged, and fail again at unmount
	e.put(testBucket, "contended", []byte("v1"))
	p := e.path("c", "contended")
	equalBytes(t, "v1", mustRead(t, p), []byte("v1"))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("mine")); err != nil {
		t.Fatal(err)
	}
	e.put(testBucket, "contended", []byte("theirs"))
	assertErrno(t, f.Close(), syscall.ESTALE)
	got, _ := e.get(testBucket, "contended")
	equalBytes(t, "the other writer's object", got, []byte("theirs"))

	// A new file whose name someone else took meanwhile fails the same way.
	g, err := os.Create(e.path("c", "raced-new"))
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("mine"))
	e.put(testBucket, "raced-new", []byte("theirs"))
	// The first flush happened at create time only if the file was closed; here it is the close.
	assertErrno(t, g.Close(), syscall.ESTALE)
}

// TestSemantics_ReplaceWhileReading: a writer writes ckpt.tmp, fsyncs and renames it onto ckpt again and
// again while a reader reads ckpt: every read the reader completes is one whole checkpoint.
func TestSemantics_ReplaceWhileReading(t *testing.T) {
	const chunk = 256 << 10
	e := newEnv(t, envOptions{chunkSize: chunk})
	dir := e.path("c", "run")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ckpt := func(i int) []byte {
		b := randBytes(uint64(1000+i), chunk+i*1000)
		copy(b, fmt.Sprintf("ckpt-%04d", i))
		return b
	}
	write := func(i int) {
		tmp := dir + "/ckpt.tmp"
		f, err := os.Create(tmp)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(ckpt(i)); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, dir+"/ckpt"); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var reads, stale int
	var readErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, err := os.ReadFile(dir + "/ckpt")
			if errors.Is(err, syscall.ESTALE) || errors.Is(err, os.ErrNotExist) {
				stale++
				continue
			}
			if err != nil {
				readErr = err
				return
			}
			var i int
			if _, err := fmt.Sscanf(string(got[:9]), "ckpt-%04d", &i); err != nil || !bytes.Equal(got, ckpt(i)) {
				readErr = fmt.Errorf("read %d bytes that are not a whole checkpoint", len(got))
				return
			}
			reads++
		}
	}()
	for i := 1; i <= 15; i++ {
		write(i)
	}
	close(stop)
	wg.Wait()
	if readErr != nil {
		t.Fatal(readErr)
	}
	t.Logf("reader completed %d whole reads, %d ESTALE/ENOENT retries", reads, stale)
	equalBytes(t, "final checkpoint", mustRead(t, dir+"/ckpt"), ckpt(15))
	if _, ok := e.get(testBucket, "run/ckpt.tmp"); ok {
		t.Fatal("ckpt.tmp still exists after the last rename")
	}
}

// TestSemantics_ConcurrentWriters: 32 writers of different files in one directory all land.
func TestSemantics_ConcurrentWriters(t *testing.T) {
	e := newEnv(t, envOptions{upload: smallUploads})
	if err := os.Mkdir(e.path("c", "many"), 0o755); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := randBytes(uint64(i), 100_000+i*3_000)
			if err := os.WriteFile(e.path("c", fmt.Sprintf("many/f%02d", i)), data, 0o644); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < 32; i++ {
		got, ok := e.get(testBucket, fmt.Sprintf("many/f%02d", i))
		if !ok {
			t.Fatalf("many/f%02d missing", i)
		}
		equalBytes(t, fmt.Sprintf("many/f%02d", i), got, randBytes(uint64(i), 100_000+i*3_000))
	}
	if n := len(names(t, e.path("c", "many"))); n != 32 {
		t.Fatalf("listing shows %d files", n)
	}
}

// TestSemantics_ReadOnlyMount: every change is EROFS.
func TestSemantics_ReadOnlyMount(t *testing.T) {
	e := newEnv(t, envOptions{readOnly: true})
	e.put(testBucket, "ro/file", []byte("x"))
	p := e.path("c", "ro/file")
	if _, err := os.OpenFile(p, os.O_WRONLY, 0); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("open for write: %v", err)
	}
	assertErrno(t, os.WriteFile(e.path("c", "ro/new"), nil, 0o644), syscall.EROFS)
	assertErrno(t, os.Mkdir(e.path("c", "ro/d"), 0o755), syscall.EROFS)
	assertErrno(t, os.Remove(p), syscall.EROFS)
	assertErrno(t, os.Rename(p, e.path("c", "ro/g")), syscall.EROFS)
	assertErrno(t, os.Symlink("x", e.path("c", "ro/l")), syscall.EROFS)
	assertErrno(t, os.Truncate(p, 0), syscall.EROFS)
	assertErrno(t, os.Chtimes(p, time.Now(), time.Now()), syscall.EROFS)
	equalBytes(t, "still readable", mustRead(t, p), []byte("x"))
}
