package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestCgroupMemoryLimit reads the smallest memory limit along the process's cgroup path, for
// cgroup v2 and v1, and the defaults that follow it.
func TestCgroupMemoryLimit(t *testing.T) {
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	oldRoot, oldProc := cgroupRoot, procCgroup
	t.Cleanup(func() { cgroupRoot, procCgroup = oldRoot, oldProc })
	for _, tc := range []struct {
		name  string
		files map[string]string
		proc  string
		want  int64
	}{
		{"v2 pod limit above the container's", map[string]string{
			"memory.max":                  "max\n",
			"kubepods/memory.max":         "1073741824\n",
			"kubepods/pod1/memory.max":    "268435456\n",
			"kubepods/pod1/c1/memory.max": "max\n",
		}, "0::/kubepods/pod1/c1\n", 256 << 20},
		{"v2 no limit", map[string]string{"memory.max": "max\n", "user.slice/memory.max": "max\n"}, "0::/user.slice\n", 0},
		{"v2 namespaced root", map[string]string{"memory.max": "134217728\n"}, "0::/\n", 128 << 20},
		{"v1", map[string]string{
			"memory/memory.limit_in_bytes":            "9223372036854771712\n",
			"memory/docker/abc/memory.limit_in_bytes": "536870912\n",
		}, "12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n", 512 << 20},
		{"no cgroup file", nil, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cgroupRoot, procCgroup = filepath.Join(dir, "cg"), filepath.Join(dir, "proc-cgroup")
			for p, s := range tc.files {
				write(filepath.Join(cgroupRoot, p), s)
			}
			if tc.proc != "" {
				write(procCgroup, tc.proc)
			}
			if got := cgroupMemoryLimit(); got != tc.want {
				t.Fatalf("limit %d, want %d", got, tc.want)
			}
		})
	}
	for _, tc := range []struct{ limit, prefetch, heap int64 }{
		{0, 64 << 20, 60 << 20},
		{256 << 20, 64 << 20, 60 << 20},
		{128 << 20, 32 << 20, 38 << 20},
		{64 << 20, 16 << 20, 24 << 20},
	} {
		if got := autoPrefetchMemory(tc.limit); got != tc.prefetch {
			t.Errorf("prefetch memory under %d: %d, want %d", tc.limit, got, tc.prefetch)
		}
		if got := autoHeapLimit(60<<20, tc.limit); got/(1<<20) != tc.heap/(1<<20) {
			t.Errorf("heap limit under %d: %d, want about %d", tc.limit, got, tc.heap)
		}
	}
}
