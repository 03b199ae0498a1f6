package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/internal/emulator"
)

func TestConnectionsCheck(t *testing.T) {
	srv := startEmulator(t, emulator.Options{Buckets: []string{"gcs-datasets"}})
	if err := srv.PutObject("gcs-datasets", "path1/a.txt", []byte("a"), ""); err != nil {
		t.Fatal(err)
	}
	conf := writeFile(t, "conns.yaml", `
connections:
- name: good
  kind: gcs
  schema: {bucket: "gs://gcs-datasets/path1"}
- name: missing
  kind: gcs
  schema: {bucket: "gs://no-such-bucket/x"}
`)
	t.Run("one good, one missing bucket", func(t *testing.T) {
		res := runPlxfs(t, nil, "connections", "check", "--config", conf, "--endpoint", srv.URL())
		if res.Code != 1 {
			t.Fatalf("exit code %d, want 1\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, res.Stderr)
		}
		lines := strings.Split(strings.TrimSpace(res.Stdout), "\n")
		if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
			t.Fatalf("want a header and one line per connection, got:\n%s", res.Stdout)
		}
		lines = lines[1:]
		if !strings.HasPrefix(lines[0], "good") || !strings.HasSuffix(lines[0], "OK") {
			t.Errorf("good connection line = %q, want it to end in OK", lines[0])
		}
		if !strings.HasPrefix(lines[1], "missing") || !strings.Contains(lines[1], "FAIL") {
			t.Errorf("missing connection line = %q, want FAIL", lines[1])
		}
		if !strings.Contains(res.Stderr, "1 of 2 connections failed") {
			t.Errorf("stderr = %q, want a summary of failures", res.Stderr)
		}
	})
	t.Run("selected good only, flags before the command, json", func(t *testing.T) {
		res := runPlxfs(t, []string{"STORAGE_EMULATOR_HOST=" + srv.Host()}, "--config", conf, "connections", "check", "-o", "json", "good")
		if res.Code != 0 {
			t.Fatalf("exit code %d\nstdout:\n%s\nstderr:\n%s", res.Code, res.Stdout, res.Stderr)
		}
		var got []struct {
			Name string `json:"name"`
			OK   bool   `json:"ok"`
		}
		if err := json.Unmarshal([]byte(res.Stdout), &got); err != nil {
			t.Fatalf("output is not JSON: %v\n%s", err, res.Stdout)
		}
		if len(got) != 1 || got[0].Name != "good" || !got[0].OK {
			t.Errorf("got %+v, want good OK", got)
		}
	})
	t.Run("unknown name is a usage-style error before any call", func(t *testing.T) {
		res := runPlxfs(t, nil, "connections", "check", "--config", conf, "--endpoint", srv.URL(), "nope")
		if res.Code == 0 || !strings.Contains(res.Stderr, "nope") {
			t.Errorf("exit %d, stderr %q: want an error naming the unknown connection", res.Code, res.Stderr)
		}
	})
}

func TestConnectionsList(t *testing.T) {
	conf := writeFile(t, "conns.yaml", `
persistence:
- name: ds1
  kind: gcs
  schema: {bucket: "gs://gcs-datasets/path1"}
- name: s3data
  kind: s3
  schema: {bucket: "s3://other"}
`)
	keyDir := t.TempDir()
	res := runPlxfs(t, []string{"GC_KEY_PATH=" + keyDir + "/missing.json", "POLYAXON_CONTEXT_ROOT=" + keyDir},
		"connections", "list", "--config", conf)
	if res.Code != 0 {
		t.Fatalf("exit %d: %s", res.Code, res.Stderr)
	}
	if !strings.Contains(res.Stdout, "ds1") || strings.Contains(res.Stdout, "s3data") {
		t.Errorf("list should show the gcs connection only:\n%s", res.Stdout)
	}
	if !strings.Contains(res.Stdout, "GC_KEY_PATH") {
		t.Errorf("list should say the key comes from GC_KEY_PATH (and that it is missing):\n%s", res.Stdout)
	}
}

func TestUsageErrors(t *testing.T) {
	res := runPlxfs(t, nil, "connections", "list", "--no-such-flag")
	if res.Code != 2 {
		t.Errorf("unknown flag: exit %d, want 2 (stderr %q)", res.Code, res.Stderr)
	}
	bad := writeFile(t, "bad.yaml", "connections:\n- name: x\n  kind: gcs\n  schema: {bucket: \"gs://UPPER\"}\n")
	res = runPlxfs(t, nil, "connections", "list", "--config", bad)
	if res.Code != 1 || !strings.Contains(res.Stderr, "bad.yaml:4") {
		t.Errorf("bad bucket: exit %d stderr %q: want the file and line", res.Code, res.Stderr)
	}
	res = runPlxfs(t, nil, "--help")
	if res.Code != 0 || !strings.Contains(res.Stdout, "POLYAXON_CONNECTIONS_CATALOG") {
		t.Errorf("--help should be the manual's first page: exit %d\n%s", res.Code, res.Stdout)
	}
}
