package transfer

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/plxfs/plxfs/internal/faultproxy"
	"github.com/plxfs/plxfs/store"
)

// TestFaultyServerStillYieldsCorrectFiles runs uploads and downloads, small and big, through a
// proxy that throttles, fails, resets and truncates the first attempts, and checks every byte.
func TestFaultyServerStillYieldsCorrectFiles(t *testing.T) {
	p := faultproxy.New(42)
	e := newEnv(t, envOpts{handler: p.Middleware})
	ctx := context.Background()

	src := t.TempDir()
	want := map[string][]byte{}
	for i := range 40 {
		rel := fmt.Sprintf("d%d/f%02d.bin", i%4, i)
		want[rel] = randBytes(uint64(i), 1000+i*997)
	}
	want["big.bin"] = randBytes(99, 3<<20+123) // composed on upload, ranged on download
	for rel, data := range want {
		path := filepath.Join(src, filepath.FromSlash(rel))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	opts := composeOpts()

	p.SetRules(
		faultproxy.Rule{Name: "upload 503", Match: []string{"/upload/"}, Action: faultproxy.Status, Status: 503, First: 6},
		faultproxy.Rule{Name: "upload 429", Match: []string{"/upload/"}, Action: faultproxy.Status, Status: 429, First: 4},
		faultproxy.Rule{Name: "compose 500", Match: []string{"/compose"}, Action: faultproxy.Status, Status: 500, First: 1},
		faultproxy.Rule{Name: "list 503", Method: "GET", Match: []string{"/o?"}, Action: faultproxy.Status, Status: 503, First: 1},
	)
	s, err := UploadTree(ctx, e.b, src, "up", opts)
	if err != nil || s.Failed != 0 || s.Files != int64(len(want)) {
		t.Fatalf("upload through faults: %+v, %v", s, err)
	}
	st := p.Stats()
	t.Logf("upload: %d requests, faults by rule %v", st.Requests, st.ByRule)
	if st.ByRule["upload 503"] == 0 || st.ByRule["compose 500"] == 0 {
		t.Fatalf("faults not injected: %v", st.ByRule)
	}
	for rel, data := range want {
		if got := e.content(t, "up/"+rel); !bytes.Equal(got, data) {
			t.Fatalf("%s: stored %d bytes differ from the %d sent", rel, len(got), len(data))
		}
	}
	if left := e.names(t, TempDir+"/"); len(left) != 0 {
		t.Fatalf("temporary parts left: %v", left)
	}

	p.ResetStats()
	p.SetRules(
		faultproxy.Rule{Name: "read 503", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Status, Status: 503, First: 5},
		faultproxy.Rule{Name: "read reset", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Reset, After: 100, First: 4},
		faultproxy.Rule{Name: "read truncate", Method: "GET", Match: []string{"generation="}, Action: faultproxy.Truncate, After: 500, First: 4},
		faultproxy.Rule{Name: "list 429", Method: "GET", Match: []string{"/o?"}, Action: faultproxy.Status, Status: 429, First: 1},
	)
	dst := t.TempDir()
	s, err = DownloadTree(ctx, e.b, "up", dst, opts)
	if err != nil || s.Failed != 0 || s.Files != int64(len(want)) {
		t.Fatalf("download through faults: %+v, %v", s, err)
	}
	st = p.Stats()
	t.Logf("download: %d requests, faults by rule %v", st.Requests, st.ByRule)
	if st.ByRule["read reset"] == 0 || st.ByRule["read truncate"] == 0 {
		t.Fatalf("faults not injected: %v", st.ByRule)
	}
	got := localFiles(t, dst)
	if len(got) != len(want) {
		t.Fatalf("%d files downloaded, want %d", len(got), len(want))
	}
	for rel, data := range want {
		if !bytes.Equal(got[rel], data) {
			t.Fatalf("%s differs", rel)
		}
	}
}

// TestFaultsPastRetries: a server that keeps refusing uploads makes the upload fail cleanly,
// with nothing left in the bucket; once the faults stop, the same upload succeeds.
func TestFaultsPastRetries(t *testing.T) {
	p := faultproxy.New(1)
	e := newEnv(t, envOpts{handler: p.Middleware})
	ctx := context.Background()
	data := randBytes(5, 2<<20)
	p.SetRules(faultproxy.Rule{Name: "parts refused", Match: []string{"/upload/", "part-00003"}, Action: faultproxy.Status, Status: 503})
	if _, err := Upload(ctx, e.b, "x", bytes.NewReader(data), int64(len(data)), store.WriteOptions{}, composeOpts()); err == nil {
		t.Fatal("upload succeeded although one part was always refused")
	}
	if left := e.names(t, ""); len(left) != 0 {
		t.Fatalf("objects left: %v", left)
	}
	p.Clear()
	if _, err := Upload(ctx, e.b, "x", bytes.NewReader(data), int64(len(data)), store.WriteOptions{}, composeOpts()); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.content(t, "x"), data) {
		t.Fatal("content differs")
	}
}
