package cache

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, k := range []key{
		{Bucket: "b", Name: "n", Gen: 1, Unit: 8 << 20, Index: 0},
		{Bucket: "gcs-datasets", Name: "path1/a b/ü.tfrecord", Gen: 1712345678901234, Unit: 256 << 10, Index: 99},
		{Bucket: "b", Name: string(bytes.Repeat([]byte("x"), 2000)), Gen: 7, Unit: 1, Index: 1 << 40},
	} {
		h := header{key: k, dataLen: min(k.Unit, 12345), dataCRC: 0xdeadbeef}
		b := h.encode()
		if int64(len(b)) != h.size() {
			t.Fatalf("encoded %d bytes, size() %d", len(b), h.size())
		}
		got, err := readHeader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("readHeader: %v", err)
		}
		if got != h {
			t.Fatalf("round trip: got %+v want %+v", got, h)
		}
		for _, i := range []int{0, 9, 13, 20, 50, len(b) - 5, len(b) - 1} {
			bad := bytes.Clone(b)
			bad[i] ^= 1
			if _, err := readHeader(bytes.NewReader(bad)); !errors.Is(err, errBadHeader) {
				t.Errorf("flipped byte %d: err %v, want errBadHeader", i, err)
			}
		}
		if _, err := readHeader(bytes.NewReader(b[:len(b)-1])); !errors.Is(err, errBadHeader) {
			t.Errorf("short header: err %v", err)
		}
	}
}

func TestKeyIDIsUnambiguous(t *testing.T) {
	keys := []key{
		{Bucket: "a", Name: "bc", Gen: 1, Unit: 1, Index: 0},
		{Bucket: "ab", Name: "c", Gen: 1, Unit: 1, Index: 0},
		{Bucket: "a", Name: "bc", Gen: 2, Unit: 1, Index: 0},
		{Bucket: "a", Name: "bc", Gen: 1, Unit: 2, Index: 0},
		{Bucket: "a", Name: "bc", Gen: 1, Unit: 1, Index: 1},
	}
	seen := map[string]key{}
	for _, k := range keys {
		id := k.id()
		if prev, ok := seen[id]; ok {
			t.Fatalf("%+v and %+v share id %s", prev, k, id)
		}
		seen[id] = k
	}
}

func TestParseChunkName(t *testing.T) {
	k := key{Bucket: "b", Name: "n", Gen: 1, Unit: 1, Index: 0}
	id := k.id()
	for _, tc := range []struct {
		name string
		ok   bool
		fill uint64
	}{
		{id + ".1f", true, 0x1f},
		{id + ".ffffffffffffffff", true, 1<<64 - 1},
		{id, false, 0},
		{id + ".", false, 0},
		{id + ".xyz", false, 0},
		{id[:63] + ".1", false, 0},
		{"tmp-123", false, 0},
		{"ZZ" + id[2:] + ".1", false, 0},
	} {
		gotID, fill, ok := parseChunkName(tc.name)
		if ok != tc.ok || (ok && (gotID != id || fill != tc.fill)) {
			t.Errorf("parseChunkName(%q) = %q, %d, %v; want ok=%v fill=%d", tc.name, gotID, fill, ok, tc.ok, tc.fill)
		}
	}
}
