package emulator

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
)

func start(t *testing.T, opts Options) *Server {
	t.Helper()
	s, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

func get(t *testing.T, url string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	return resp.StatusCode, body
}

func TestServeAndCount(t *testing.T) {
	for _, backend := range []string{"memory", "filesystem"} {
		t.Run(backend, func(t *testing.T) {
			s := start(t, Options{Backend: backend, Buckets: []string{"bkt"}})
			if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") || s.URL() != "http://"+s.Host() {
				t.Fatalf("URL %q Host %q", s.URL(), s.Host())
			}
			data := []byte("0123456789abcdefghij")
			gen, err := s.PutObjectGen("bkt", "dir/obj.txt", data, "")
			if err != nil {
				t.Fatal(err)
			}
			if gen <= 0 {
				t.Fatalf("generation %d", gen)
			}

			// XML read with a range (works only because PublicHost is our listener).
			code, body := get(t, s.URL()+"/bkt/dir/obj.txt", map[string]string{"Range": "bytes=2-5"})
			if code != http.StatusPartialContent || string(body) != "2345" {
				t.Fatalf("XML ranged read: %d %q", code, body)
			}
			// JSON media read.
			code, body = get(t, s.URL()+"/storage/v1/b/bkt/o/dir%2Fobj.txt?alt=media", nil)
			if code != http.StatusOK || !bytes.Equal(body, data) {
				t.Fatalf("JSON read: %d %q", code, body)
			}
			// Stat and list.
			code, body = get(t, s.URL()+"/storage/v1/b/bkt/o/dir%2Fobj.txt", nil)
			if code != http.StatusOK || !strings.Contains(string(body), `"name":"dir/obj.txt"`) {
				t.Fatalf("stat: %d %s", code, body)
			}
			code, body = get(t, s.URL()+"/storage/v1/b/bkt/o?prefix=dir/", nil)
			var list struct {
				Items []struct{ Name string } `json:"items"`
			}
			if err := json.Unmarshal(body, &list); err != nil || code != 200 || len(list.Items) != 1 || list.Items[0].Name != "dir/obj.txt" {
				t.Fatalf("list: %d %s (%v)", code, body, err)
			}

			c := s.Requests()
			if c.Total != 4 || c.MediaGets != 2 || c.Stats != 1 || c.Lists != 1 {
				t.Fatalf("counts %+v", c)
			}
			reads := c.ReadsOf("bkt", "dir/obj.txt")
			if len(reads) != 2 || reads[0].Range != "bytes=2-5" || reads[1].Range != "" {
				t.Fatalf("reads %+v", c.Reads)
			}
			s.ResetCounts()
			if c := s.Requests(); c.Total != 0 || len(c.Reads) != 0 {
				t.Fatalf("after reset %+v", c)
			}

			o, err := s.GetObject("bkt", "dir/obj.txt")
			if err != nil || !bytes.Equal(o.Content, data) || o.Generation != gen {
				t.Fatalf("GetObject %+v %v", o, err)
			}
			names, err := s.ObjectNames("bkt", "")
			if err != nil || len(names) != 1 || names[0] != "dir/obj.txt" {
				t.Fatalf("ObjectNames %v %v", names, err)
			}
		})
	}
}

func TestMiddlewareSeesRequestsFirst(t *testing.T) {
	var seen atomic.Int32
	s := start(t, Options{Buckets: []string{"b"}, Handler: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen.Add(1)
			if strings.Contains(r.URL.Path, "refuse") {
				http.Error(w, "injected", http.StatusServiceUnavailable)
				return
			}
			next.ServeHTTP(w, r)
		})
	}})
	if code, _ := get(t, s.URL()+"/storage/v1/b/b/o/refuse?alt=media", nil); code != http.StatusServiceUnavailable {
		t.Fatalf("refused request: %d", code)
	}
	if code, _ := get(t, s.URL()+"/storage/v1/b/b/o/missing?alt=media", nil); code != http.StatusNotFound {
		t.Fatalf("missing object: %d", code)
	}
	if seen.Load() != 2 {
		t.Fatalf("middleware saw %d requests", seen.Load())
	}
	if c := s.Requests(); c.Total != 1 || c.MediaGets != 1 {
		t.Fatalf("emulator counted %+v; want only the forwarded request", c)
	}
}

func TestFilesystemTempRootRemoved(t *testing.T) {
	s, err := Start(Options{Backend: "filesystem", Buckets: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutObject("b", "x", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	dir := s.tempDir
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("root %q: %v", dir, err)
	}
	s.Stop()
	s.Stop() // idempotent
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("root %q still there after Stop: %v", dir, err)
	}
}

func TestFilesystemCallerRootKept(t *testing.T) {
	root := t.TempDir()
	s := start(t, Options{Backend: "filesystem", Root: root, Buckets: []string{"b"}})
	if err := s.PutObject("b", "x", []byte("x"), ""); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if _, err := os.Stat(root); err != nil {
		t.Fatalf("caller's root removed: %v", err)
	}
}

func TestBadBackend(t *testing.T) {
	if _, err := Start(Options{Backend: "s3"}); err == nil || !strings.Contains(err.Error(), `"s3"`) {
		t.Fatalf("err = %v", err)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		method, url string
		want        kind
		bucket, obj string
	}{
		{"GET", "/storage/v1/b/bk/o?prefix=a", kindList, "bk", ""},
		{"GET", "/storage/v1/b/bk/o/a%2Fb?alt=media", kindMedia, "bk", "a/b"},
		{"GET", "/storage/v1/b/bk/o/a%2Fb", kindStat, "bk", "a/b"},
		{"GET", "/download/storage/v1/b/bk/o/a%2Fb?alt=media", kindMedia, "bk", "a/b"},
		{"GET", "/bk/a/b", kindMedia, "bk", "a/b"},
		{"HEAD", "/bk/a/b", kindStat, "bk", "a/b"},
		{"POST", "/upload/storage/v1/b/bk/o?uploadType=resumable", kindUpload, "", ""},
		{"PUT", "/upload/resumable/xyz", kindUpload, "", ""},
		{"POST", "/storage/v1/b/bk/o/d%2Fst/compose", kindCompose, "bk", "d/st"},
		{"POST", "/storage/v1/b/bk/o/src/rewriteTo/b/bk/o/dst", kindCopy, "bk", "src"},
		{"DELETE", "/storage/v1/b/bk/o/x", kindDelete, "bk", "x"},
		{"PATCH", "/storage/v1/b/bk/o/x", kindPatch, "bk", "x"},
		{"GET", "/storage/v1/b/bk", kindOther, "bk", ""},
		{"PUT", "/_internal/config", kindOther, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.url, func(t *testing.T) {
			r, err := http.NewRequest(tc.method, "http://h"+tc.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			k, b, o := classify(r)
			if k != tc.want || b != tc.bucket || o != tc.obj {
				t.Fatalf("classify = %v %q %q; want %v %q %q", k, b, o, tc.want, tc.bucket, tc.obj)
			}
		})
	}
}
