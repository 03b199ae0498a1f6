package fs

import (
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/plxfs/plxfs/internal/faultproxy"
)

// TestSemantics_UploadFailure: when the bucket refuses uploads past the retry budget, close
// returns EIO, neither the object nor any temporary part is left, and the staged data stays:
// a later flush (reopen and close) after the fault clears uploads it.
func TestSemantics_UploadFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		size int
		skip int // upload requests let through before the fault: some parts land first
	}{
		{"resumable", 300_000, 0},
		{"composed", 9<<20 + 5, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := faultproxy.New(1)
			e := newEnv(t, envOptions{handler: proxy.Middleware, upload: smallUploads})
			name := "fail/" + tc.name
			if err := os.MkdirAll(e.path("c", "fail"), 0o755); err != nil {
				t.Fatal(err)
			}
			data := randBytes(11, tc.size)
			proxy.SetRules(faultproxy.Rule{Name: "uploads", Match: []string{"/upload/"}, Status: 503, Skip: tc.skip})
			f, err := os.Create(e.path("c", name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			assertErrno(t, f.Close(), syscall.EIO)
			if st := proxy.Stats(); st.Faults == 0 {
				t.Fatal("no fault was injected")
			}
			if _, ok := e.get(testBucket, name); ok {
				t.Fatal("a failed upload left an object")
			}
			if parts, _ := e.emu.ObjectNames(testBucket, ".plxfs-tmp/"); len(parts) != 0 {
				t.Fatalf("temporary parts left after the failure: %v", parts)
			}
			// The mount still shows the staged file with its size.
			if fi, err := os.Stat(e.path("c", name)); err != nil || fi.Size() != int64(tc.size) {
				t.Fatalf("staged file: %v %v", fi, err)
			}

			proxy.Clear()
			g, err := os.OpenFile(e.path("c", name), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := g.Close(); err != nil {
				t.Fatalf("flush after the fault cleared: %v", err)
			}
			got, ok := e.get(testBucket, name)
			if !ok {
				t.Fatal("no object after the retry")
			}
			equalBytes(t, fmt.Sprintf("%s object", tc.name), got, data)
		})
	}
}
