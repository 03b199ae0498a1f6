package posixmd

import (
	"maps"
	"syscall"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	ns := time.Date(2020, 1, 2, 3, 4, 5, 678, time.UTC)
	tests := []struct {
		name string
		md   map[string]string
		want Attrs
	}{
		{"nothing", nil, Attrs{}},
		{"gsutil cp -P", map[string]string{MtimeKey: "1577934245", AtimeKey: "1577934246", ModeKey: "640", UIDKey: "10", GIDKey: "20"},
			Attrs{Mode: 0o640, HasMode: true, UID: 10, HasUID: true, GID: 20, HasGID: true, Mtime: time.Unix(1577934245, 0), Atime: time.Unix(1577934246, 0)}},
		{"plxfs nanoseconds agree", map[string]string{MtimeKey: "1577934245", PlxfsMtimeKey: ns.Format(time.RFC3339Nano)}, Attrs{Mtime: ns}},
		{"gsutil changed mtime since", map[string]string{MtimeKey: "1600000000", PlxfsMtimeKey: ns.Format(time.RFC3339Nano)}, Attrs{Mtime: time.Unix(1600000000, 0)}},
		{"old plxfs only", map[string]string{PlxfsMtimeKey: ns.Format(time.RFC3339Nano)}, Attrs{Mtime: ns}},
		{"rclone", map[string]string{RcloneMtimeKey: ns.Format(time.RFC3339Nano)}, Attrs{Mtime: ns}},
		{"fifo", map[string]string{ModeKey: "644", PlxfsModeKey: "10644"}, Attrs{Mode: syscall.S_IFIFO | 0o644, HasMode: true}},
		{"fifo chmodded by another tool", map[string]string{ModeKey: "600", PlxfsModeKey: "10644"}, Attrs{Mode: syscall.S_IFIFO | 0o600, HasMode: true}},
		{"char device", map[string]string{ModeKey: "600", PlxfsModeKey: "20600", RdevKey: "259"}, Attrs{Mode: syscall.S_IFCHR | 0o600, HasMode: true, Rdev: 259}},
		{"setuid", map[string]string{ModeKey: "755", PlxfsModeKey: "4755"}, Attrs{Mode: 0o4755, HasMode: true}},
		{"garbage ignored", map[string]string{ModeKey: "rwx", UIDKey: "-1", MtimeKey: "soon"}, Attrs{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Parse(tc.md)
			if got.Mode != tc.want.Mode || got.HasMode != tc.want.HasMode || got.UID != tc.want.UID || got.HasUID != tc.want.HasUID ||
				got.GID != tc.want.GID || got.HasGID != tc.want.HasGID || !got.Mtime.Equal(tc.want.Mtime) || !got.Atime.Equal(tc.want.Atime) || got.Rdev != tc.want.Rdev {
				t.Fatalf("Parse(%v) = %+v, want %+v", tc.md, got, tc.want)
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	ns := time.Date(2020, 1, 2, 3, 4, 5, 678, time.UTC)
	a := Attrs{Mode: syscall.S_IFBLK | 0o660, HasMode: true, UID: 1, HasUID: true, GID: 2, HasGID: true, Mtime: ns, Atime: ns, Rdev: 7<<8 | 1}
	md := a.Metadata()
	if md[ModeKey] != "660" || md[MtimeKey] != "1577934245" || md[PlxfsModeKey] != "60660" {
		t.Fatalf("Metadata: %v", md)
	}
	got := Parse(md)
	if got.Mode != a.Mode || got.Rdev != a.Rdev || !got.Mtime.Equal(ns) || !got.Atime.Equal(ns) || got.UID != 1 || got.GID != 2 {
		t.Fatalf("round trip: %+v, want %+v", got, a)
	}
	plain := Attrs{Mode: 0o644, HasMode: true}
	patch := plain.Patch()
	if v, ok := patch[PlxfsModeKey]; !ok || v != "" || !maps.Equal(plain.Metadata(), map[string]string{ModeKey: "644"}) {
		t.Fatalf("Patch %v, Metadata %v", patch, plain.Metadata())
	}
}
