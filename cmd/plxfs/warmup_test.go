package main

import (
	"slices"
	"testing"
)

func TestParseMountWarmup(t *testing.T) {
	got, err := parseMountWarmup([]string{"ds/train/", "/mnt/plx/ds2/a/../b", "ds3"}, "/mnt/plx")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ds/train", "ds2/b", "ds3"}; !slices.Equal(got, want) {
		t.Fatalf("parseMountWarmup = %v, want %v", got, want)
	}
	for _, bad := range []string{"/elsewhere/ds", "/mnt/plx", "", "/"} {
		if _, err := parseMountWarmup([]string{bad}, "/mnt/plx"); err == nil || !isUsageError(err) {
			t.Errorf("--warmup %q: %v, want a usage error", bad, err)
		}
	}
}
