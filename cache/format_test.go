package cache

import (
	"bytes"
	"errors"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	for _, h := range []header{
		{obj: objectID{"b", "n", 1}, size: 1, chunk: 8 << 20, blk: 256 << 10},
		{obj: objectID{"gcs-datasets", "path1/a b/ü.tfrecord", 1712345678901234}, size: 10 << 30, chunk: 8 << 20, blk: 256 << 10},
		{obj: objectID{"b", string(bytes.Repeat([]byte("x"), 2000)), 7}, size: 1 << 40, chunk: 3, blk: 1},
	} {
		b := h.encode()
		if int64(len(b)) != h.len() {
			t.Fatalf("encoded %d bytes, len() %d", len(b), h.len())
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

// TestSlots: every chunk and every block has its own record slot, and unitOf inverts slot.
func TestSlots(t *testing.T) {
	h := header{obj: objectID{"b", "n", 1}, size: 5*1000 + 1, chunk: 1000, blk: 300}
	if got, want := h.slots(), int64(6+17); got != want {
		t.Fatalf("slots %d, want %d", got, want)
	}
	seen := map[int64]bool{}
	for s := range h.slots() {
		k := h.unitOf(s)
		if h.slot(k) != s || seen[s] || k.off() >= h.size {
			t.Fatalf("slot %d: unit %+v maps back to %d", s, k, h.slot(k))
		}
		seen[s] = true
	}
}

func TestRecordRoundTrip(t *testing.T) {
	r := record{dataCRC: 0xdeadbeef, seq: 42}
	b := r.encode()
	if got, ok := decodeRecord(b); !ok || got != r {
		t.Fatalf("round trip: %+v %v", got, ok)
	}
	if _, ok := decodeRecord(make([]byte, recordLen)); ok {
		t.Fatal("an all-zero record is valid")
	}
	for i := range b {
		bad := bytes.Clone(b)
		bad[i] ^= 4
		if _, ok := decodeRecord(bad); ok {
			t.Errorf("flipped byte %d: still valid", i)
		}
	}
	if _, ok := decodeRecord(record{dataCRC: 1}.encode()); ok {
		t.Fatal("a record with sequence 0 is valid")
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
	if (objectID{"a", "bc", 1}).fileID() == (objectID{"ab", "c", 1}).fileID() {
		t.Fatal("file ids collide")
	}
}

func TestParseObjectName(t *testing.T) {
	id := objectID{"b", "n", 1}.fileID()
	for _, tc := range []struct {
		name, suffix string
		ok           bool
	}{
		{id + ".data", "data", true},
		{id + ".idx", "idx", true},
		{id, "", false},
		{id + ".", "", false},
		{id + ".xyz", "", false},
		{id[:63] + ".data", "", false},
		{"tmp-123", "", false},
		{"ZZ" + id[2:] + ".data", "", false},
	} {
		gotID, suffix, ok := parseObjectName(tc.name)
		if ok != tc.ok || (ok && (gotID != id || suffix != tc.suffix)) {
			t.Errorf("parseObjectName(%q) = %q, %q, %v; want ok=%v suffix=%q", tc.name, gotID, suffix, ok, tc.ok, tc.suffix)
		}
	}
}
