package connspec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

const mixedCatalog = `connections:
- name: gcs-a
  kind: gcs
  schema: {bucket: gs://bkt/a}
- name: s3-dataset1
  kind: s3
  schema: {bucket: s3://x}
- name: gcs-b
  kind: gcs
  schema: {bucket: gs://bkt/b}
- name: claim
  kind: volume_claim
  schema: {volumeClaim: c, mountPath: /data}
`

func TestSelect(t *testing.T) {
	cat, err := ParseYAML("c.yaml", []byte(mixedCatalog))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		names   []string
		want    []string
		wantErr []string
	}{
		{name: "no names: every gcs connection, others ignored", names: nil, want: []string{"gcs-a", "gcs-b"}},
		{name: "given order", names: []string{"gcs-b", "gcs-a"}, want: []string{"gcs-b", "gcs-a"}},
		{name: "repeated name taken once", names: []string{"gcs-b", "gcs-b"}, want: []string{"gcs-b"}},
		{name: "unknown name", names: []string{"gcs-a", "nope"},
			wantErr: []string{`c.yaml: connection "nope": not found; known connections: gcs-a, s3-dataset1, gcs-b, claim`}},
		{name: "selected non-gcs", names: []string{"s3-dataset1", "gcs-a", "claim"},
			wantErr: []string{
				`c.yaml:5: connection "s3-dataset1": kind: kind "s3" is not supported by plxfs, which mounts gcs connections only; remove it from the selection (run.connections or --connections)`,
				`c.yaml:11: connection "claim": kind: kind "volume_claim" is not supported by plxfs, which mounts gcs connections only; remove it from the selection (run.connections or --connections)`,
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cat.Select(tc.names)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("Select(%q) = %v, want an error", tc.names, got)
				}
				if lines := strings.Split(err.Error(), "\n"); !reflect.DeepEqual(lines, tc.wantErr) {
					t.Fatalf("errors:\n got %q\nwant %q", lines, tc.wantErr)
				}
				if !IsSelectionError(fmt.Errorf("wrapped: %w", err)) {
					t.Errorf("IsSelectionError(%v) = false: a wrong name in the selection is the caller's error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
				if !c.Mountable() {
					t.Errorf("selected %q of kind %q", c.Name, c.Kind)
				}
			}
			if !reflect.DeepEqual(names, tc.want) {
				t.Errorf("Select(%q) = %q, want %q", tc.names, names, tc.want)
			}
		})
	}

	t.Run("no gcs connections", func(t *testing.T) {
		cat, err := ParseYAML("o.yaml", []byte("connections:\n- {name: s, kind: s3}\n"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = cat.Select(nil)
		want := `o.yaml: no gcs connections; only s (s3); add a connection with kind: gcs and schema.bucket: gs://BUCKET`
		if err == nil || err.Error() != want {
			t.Errorf("error:\n got %v\nwant %s", err, want)
		}
		if IsSelectionError(err) {
			t.Errorf("IsSelectionError(%v) = true: no name was asked for, the file lacks a gcs connection", err)
		}
	})
	t.Run("empty catalog", func(t *testing.T) {
		cat := &Catalog{Source: "e.yaml"}
		if _, err := cat.Select(nil); err == nil || err.Error() != "e.yaml: no gcs connections; add a connection with kind: gcs and schema.bucket: gs://BUCKET" {
			t.Errorf("Select(nil) error = %v", err)
		}
		if _, err := cat.Select([]string{"x"}); err == nil || err.Error() != `e.yaml: connection "x": not found; the catalog has no connections` {
			t.Errorf("Select(x) error = %v", err)
		}
	})
}
