package main

import (
	"slices"
	"testing"
)

func TestInterspersed(t *testing.T) {
	app := newApp()
	tests := []struct{ in, want []string }{
		{[]string{"plxfs", "ls", "ds:train", "-l"}, []string{"plxfs", "ls", "-l", "ds:train"}},
		{[]string{"plxfs", "wait", "/plx", "--timeout", "5s"}, []string{"plxfs", "wait", "--timeout", "5s", "/plx"}},
		{[]string{"plxfs", "--config", "c.yaml", "ls", "ds:", "--output", "json", "-r"}, []string{"plxfs", "--config", "c.yaml", "ls", "--output", "json", "-r", "ds:"}},
		{[]string{"plxfs", "connections", "check", "good", "--config=c.yaml"}, []string{"plxfs", "connections", "check", "--config=c.yaml", "good"}},
		{[]string{"plxfs", "upload", "a", "b", "ds:x", "-r", "--exclude", "*.tmp"}, []string{"plxfs", "upload", "-r", "--exclude", "*.tmp", "a", "b", "ds:x"}},
		{[]string{"plxfs", "rm", "--", "ds:-odd"}, []string{"plxfs", "rm", "--", "ds:-odd"}},
		{[]string{"plxfs", "download", "ds:x", "-", "-r"}, []string{"plxfs", "download", "-r", "ds:x", "-"}},
		{[]string{"plxfs"}, []string{"plxfs"}},
		{[]string{"plxfs", "--help"}, []string{"plxfs", "--help"}},
	}
	for _, tc := range tests {
		if got := interspersed(app, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("interspersed(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
