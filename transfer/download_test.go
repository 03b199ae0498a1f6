package transfer

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// noTemps fails when dir holds a download's temporary file.
func noTemps(t *testing.T, dir string) {
	t.Helper()
	for rel := range localFiles(t, dir) {
		if strings.Contains(rel, ".plxfs-") {
			t.Fatalf("temporary file left: %s", rel)
		}
	}
}

func TestDownload(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	opts := Options{Workers: 4, PartSize: 256 << 10}
	for i, tc := range []struct {
		name   string
		size   int
		ranges int // media GETs expected
	}{
		{"empty", 0, 0}, // nothing to read
		{"one byte", 1, 1},
		{"one part", 256 << 10, 1},
		{"part+1 ranged", 256<<10 + 1, 2},
		{"many parts", 10*(256<<10) + 3, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := randBytes(uint64(100+i), tc.size)
			name := "d/" + strings.ReplaceAll(tc.name, " ", "_")
			e.put(t, name, data)
			a, err := e.b.Stat(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(t.TempDir(), "sub", "out")
			e.emu.ResetCounts()
			if err := Download(ctx, e.b, a, dest, opts); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(dest)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("content differs (%d vs %d bytes), err %v", len(got), len(data), err)
			}
			if n := e.emu.Requests().MediaGets; n != tc.ranges {
				t.Fatalf("%d media GETs, want %d", n, tc.ranges)
			}
			for _, r := range e.emu.Requests().Reads {
				if r.Generation == "" {
					t.Fatalf("read without a generation: %+v", r)
				}
			}
			noTemps(t, filepath.Dir(dest))
		})
	}
}

func gz(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestDownloadGzip(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	plain := bytes.Repeat([]byte("polyaxon gcs line\n"), 100000) // 1.8 MB, compresses well
	stored := gz(t, plain)
	if err := e.emu.PutObject(testBucket, "z.txt", stored, "gzip"); err != nil {
		t.Fatal(err)
	}
	a, err := e.b.Stat(ctx, "z.txt")
	if err != nil || a.ContentEncoding != "gzip" {
		t.Fatalf("stat %+v %v", a, err)
	}
	dir := t.TempDir()
	opts := Options{PartSize: 1024} // would be ranged, were it not gzip
	if err := Download(ctx, e.b, a, filepath.Join(dir, "plain"), opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "plain")); !bytes.Equal(got, plain) {
		t.Fatalf("decompressed download: %d bytes, want %d", len(got), len(plain))
	}
	opts.Raw = true
	if err := Download(ctx, e.b, a, filepath.Join(dir, "raw"), opts); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "raw")); !bytes.Equal(got, stored) {
		t.Fatalf("raw download: %d bytes, want the %d stored", len(got), len(stored))
	}
	// Not gzip data although marked so: a clear error, no file.
	if err := e.emu.PutObject(testBucket, "bad.gz", []byte("not gzip at all"), "gzip"); err != nil {
		t.Fatal(err)
	}
	a, _ = e.b.Stat(ctx, "bad.gz")
	err = Download(ctx, e.b, a, filepath.Join(dir, "bad"), Options{})
	if err == nil || !strings.Contains(err.Error(), "not gzip") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("a failed download left its destination")
	}
	noTemps(t, dir)
}

func TestDownloadResumesBrokenStreams(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	data := randBytes(9, 3<<20+11)
	e.put(t, "x", data)
	a, _ := e.b.Stat(ctx, "x")
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"one stream", Options{PartSize: 64 << 20}},
		{"ranged parts", Options{PartSize: 512 << 10, Workers: 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Int64
			fb := &faultBucket{Bucket: e.b, readHook: func(name string, off int64, r io.ReadCloser) io.ReadCloser {
				if broken.Add(1) <= 4 { // the first reads break after 100 KiB
					return &breakAfter{ReadCloser: r, n: 100 << 10, err: io.ErrUnexpectedEOF}
				}
				return r
			}}
			dest := filepath.Join(t.TempDir(), "x")
			if err := Download(ctx, fb, a, dest, tc.opts); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(dest); !bytes.Equal(got, data) {
				t.Fatal("content differs")
			}
		})
	}
}

func TestDownloadFailureLeavesNoFile(t *testing.T) {
	e := newEnv(t, envOpts{})
	data := randBytes(10, 2<<20)
	e.put(t, "x", data)
	a, _ := e.b.Stat(context.Background(), "x")
	for _, tc := range []struct {
		name string
		hook func(ctx context.Context, cancel func()) func(string, int64, io.ReadCloser) io.ReadCloser
		opts Options
	}{
		{"corrupted byte", func(context.Context, func()) func(string, int64, io.ReadCloser) io.ReadCloser {
			return func(_ string, off int64, r io.ReadCloser) io.ReadCloser {
				return &corrupt{ReadCloser: r, at: 1000 - off}
			}
		}, Options{PartSize: 64 << 20}},
		{"corrupted part falls back then fails", func(context.Context, func()) func(string, int64, io.ReadCloser) io.ReadCloser {
			return func(_ string, off int64, r io.ReadCloser) io.ReadCloser {
				return &corrupt{ReadCloser: r, at: 1000 - off}
			}
		}, Options{PartSize: 256 << 10}},
		{"stream always breaks", func(context.Context, func()) func(string, int64, io.ReadCloser) io.ReadCloser {
			return func(_ string, off int64, r io.ReadCloser) io.ReadCloser {
				return &breakAfter{ReadCloser: r, n: 0, err: io.ErrUnexpectedEOF}
			}
		}, Options{PartSize: 64 << 20}},
		{"cancelled mid-stream", func(ctx context.Context, cancel func()) func(string, int64, io.ReadCloser) io.ReadCloser {
			return func(_ string, off int64, r io.ReadCloser) io.ReadCloser {
				return &breakAfter{ReadCloser: r, n: 300 << 10, err: cancelNow(cancel)}
			}
		}, Options{PartSize: 256 << 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fb := &faultBucket{Bucket: e.b, readHook: tc.hook(ctx, cancel)}
			dir := t.TempDir()
			err := Download(ctx, fb, a, filepath.Join(dir, "x"), tc.opts)
			if err == nil {
				t.Fatal("download succeeded")
			}
			t.Log(err)
			if files := localFiles(t, dir); len(files) != 0 {
				t.Fatalf("files left: %v", keys(files))
			}
		})
	}
}

// cancelNow cancels and returns the error a cancelled read returns.
func cancelNow(cancel func()) error {
	cancel()
	return context.Canceled
}

// corrupt flips the byte at offset at (relative to the reader's start), if it is reached.
type corrupt struct {
	io.ReadCloser
	at  int64
	pos int64
}

func (c *corrupt) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	if c.at >= c.pos && c.at < c.pos+int64(n) {
		p[c.at-c.pos] ^= 0xff
	}
	c.pos += int64(n)
	return n, err
}
