package crc32c

import (
	"bytes"
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

// TestCRCCombine cuts 1 MiB of random bytes into pieces and combines their checksums.
func TestCRCCombine(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	want := crc32.Checksum(data, Table)
	for _, tc := range []struct {
		name string
		cuts []int
	}{
		{"no cut", nil},
		{"empty head", []int{0}},
		{"empty tail", []int{len(data)}},
		{"one byte", []int{1}},
		{"middle", []int{len(data) / 2}},
		{"many", []int{1, 7, 4096, 65536, 65537, 900000}},
		{"random", func() []int {
			c := make([]int, 20)
			for i := range c {
				c[i] = rng.IntN(len(data))
			}
			return sortInts(c)
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var crc uint32
			prev := 0
			for _, cut := range append(tc.cuts, len(data)) {
				part := data[prev:cut]
				crc = Combine(crc, crc32.Checksum(part, Table), int64(len(part)))
				prev = cut
			}
			if crc != want {
				t.Fatalf("combined %08x, want %08x", crc, want)
			}
		})
	}
}

func sortInts(s []int) []int {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

// TestCombineRandomPieces combines random pairs of short pieces, empty ones included.
func TestCombineRandomPieces(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		a := make([]byte, rng.IntN(5000))
		b := make([]byte, rng.IntN(5000))
		for i := range a {
			a[i] = byte(rng.Uint32())
		}
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		want := crc32.Checksum(append(bytes.Clone(a), b...), Table)
		got := Combine(crc32.Checksum(a, Table), crc32.Checksum(b, Table), int64(len(b)))
		if got != want {
			t.Fatalf("combine of %d and %d bytes: %08x, want %08x", len(a), len(b), got, want)
		}
	}
}
