package connspec

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Seed corpora live in testdata/fuzz/<Target>/ and run with every "go test". To fuzz:
//
//	go test ./connspec -run '^$' -fuzz FuzzParseYAML -fuzztime 60s

// maxFuzzInput keeps the YAML parser's own cost out of the picture.
const maxFuzzInput = 64 << 10

// checkErrorLines asserts that every joined error is one line starting with the source name.
func checkErrorLines(t *testing.T, err error, source string) {
	t.Helper()
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		msg := e.Error()
		if strings.ContainsAny(msg, "\r\n") {
			t.Fatalf("error is not one line: %q", msg)
		}
		if !strings.HasPrefix(msg, source) {
			t.Fatalf("error does not start with %q: %q", source, msg)
		}
		var ce *Error
		if !errors.As(e, &ce) {
			t.Fatalf("error is not a *Error: %q", msg)
		}
	}
}

func FuzzParseYAML(f *testing.F) {
	f.Add([]byte("connections:\n- name: a\n  kind: gcs\n  schema: {bucket: gs://bkt/p}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		cat, err := ParseYAML("fuzz.yaml", data)
		if err != nil {
			checkErrorLines(t, err, "fuzz.yaml")
		} else {
			seen := map[string]bool{}
			for _, c := range cat.Connections {
				if err := checkConnectionName(c.Name); err != nil {
					t.Fatalf("accepted connection name %q: %v", c.Name, err)
				}
				if seen[c.Name] {
					t.Fatalf("accepted duplicate name %q", c.Name)
				}
				seen[c.Name] = true
				if c.Mountable() {
					b, p, err := ParseBucketURL("gs://" + c.Bucket + "/" + c.Prefix)
					if err != nil || b != c.Bucket || p != c.Prefix {
						t.Fatalf("accepted bucket %q prefix %q do not round-trip: %q %q %v", c.Bucket, c.Prefix, b, p, err)
					}
				}
			}
			if _, err := cat.Select(nil); err != nil {
				checkErrorLines(t, err, "fuzz.yaml")
			}
		}
		// The same bytes through the other parsers: they must not panic either.
		if _, err := ParsePolyaxonfile("fuzz.yaml", data); err != nil {
			checkErrorLines(t, err, "fuzz.yaml")
		}
		if _, err := ParseCatalogJSON(catalogSource, data); err != nil {
			checkErrorLines(t, err, catalogSource)
		}
	})
}

func FuzzParseBucketURL(f *testing.F) {
	f.Add("gs://bkt/a//b/")
	f.Fuzz(func(t *testing.T, url string) {
		b, p, err := ParseBucketURL(url)
		if err != nil {
			if b != "" || p != "" {
				t.Fatalf("results with an error: %q %q", b, p)
			}
			return
		}
		if err := checkBucketName(b); err != nil {
			t.Fatalf("accepted bucket %q: %v", b, err)
		}
		if p != "" {
			if !strings.HasSuffix(p, "/") || strings.HasPrefix(p, "/") || strings.Contains(p, "//") {
				t.Fatalf("prefix %q is not normalised", p)
			}
			for seg := range strings.SplitSeq(strings.TrimSuffix(p, "/"), "/") {
				if seg == "." || seg == ".." {
					t.Fatalf("prefix %q has a %q segment", p, seg)
				}
			}
		}
		b2, p2, err := ParseBucketURL("gs://" + b + "/" + p)
		if err != nil || b2 != b || p2 != p {
			t.Fatalf("not idempotent: %q %q → %q %q %v", b, p, b2, p2, err)
		}
	})
}

func FuzzNameToPath(f *testing.F) {
	f.Add("a/b/c.txt")
	f.Fuzz(func(t *testing.T, name string) {
		const root = "/srv/plx/root"
		p, err := NameToPath(name)
		if err != nil {
			if !errors.Is(err, ErrUnsafeName) {
				t.Fatalf("NameToPath(%q) error %v does not wrap ErrUnsafeName", name, err)
			}
		} else {
			if !filepath.IsLocal(p) {
				t.Fatalf("NameToPath(%q) = %q is not local", name, p)
			}
			joined, err := SafeJoin(root, p)
			if err != nil || !strings.HasPrefix(joined, root+"/") {
				t.Fatalf("SafeJoin(%q, %q) = %q, %v: escapes", root, p, joined, err)
			}
			back, err := PathToName(p)
			if err != nil || back != strings.TrimSuffix(name, "/") {
				t.Fatalf("PathToName(%q) = %q, %v; want %q", p, back, err, strings.TrimSuffix(name, "/"))
			}
		}
		// The reverse direction with the same input.
		if n, err := PathToName(name); err == nil {
			if p, err := NameToPath(n); err != nil || p != name {
				t.Fatalf("PathToName(%q) = %q, but NameToPath gives %q, %v", name, n, p, err)
			}
		}
		// SafeJoin alone, on arbitrary input, never escapes.
		if joined, err := SafeJoin(root, name); err == nil {
			if joined != root && !strings.HasPrefix(joined, root+"/") {
				t.Fatalf("SafeJoin(%q, %q) = %q escapes", root, name, joined)
			}
		}
	})
}
