package fs

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// waitNoParts waits (the cleanup of an abandoned stream runs in the background) until no
// temporary part is left.
func waitNoParts(t *testing.T, e *testEnv) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		parts, _ := e.emu.ObjectNames(testBucket, ".plxfs-tmp/")
		if len(parts) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("temporary parts left: %v", parts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSemantics_StreamedUpload: a big file written in order uploads its parts while it is
// written; close composes them; no part is left.
func TestSemantics_StreamedUpload(t *testing.T) {
	e := newEnv(t, envOptions{upload: smallUploads})
	data := randBytes(21, 9<<20+3)
	f, err := os.Create(e.path("c", "streamed.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 256 << 10 {
		if _, err := f.Write(data[off:min(off+256<<10, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	// Parts land before close.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if parts, _ := e.emu.ObjectNames(testBucket, ".plxfs-tmp/"); len(parts) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no part was uploaded while the file was written")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := e.get(testBucket, "streamed.bin"); ok {
		t.Fatal("the object is visible before close")
	}
	e.emu.ResetCounts()
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	c := e.emu.Requests()
	if c.Composes == 0 {
		t.Fatalf("close did not compose the streamed parts: %+v", c)
	}
	got, _ := e.get(testBucket, "streamed.bin")
	equalBytes(t, "streamed object", got, data)
	waitNoParts(t, e)
	equalBytes(t, "read back", mustRead(t, e.path("c", "streamed.bin")), data)
}

// TestSemantics_StreamedUploadAbandoned: a write out of order abandons the streamed parts
// (deleted) and close uploads the whole file.
func TestSemantics_StreamedUploadAbandoned(t *testing.T) {
	e := newEnv(t, envOptions{upload: smallUploads})
	data := randBytes(22, 7<<20)
	f, err := os.Create(e.path("c", "patched.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(data)
	copy(want[100:], "rewritten")
	if _, err := f.WriteAt([]byte("rewritten"), 100); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	got, _ := e.get(testBucket, "patched.bin")
	equalBytes(t, "object after an out-of-order write", got, want)
	waitNoParts(t, e)
}
