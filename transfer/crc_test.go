package transfer

import (
	"hash/crc32"
	"math/rand/v2"
	"testing"
)

func TestCRCCombine(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rng.IntN(256))
	}
	want := crc32.Checksum(data, castagnoli)
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
				crc = crcCombine(crc, crc32.Checksum(part, castagnoli), int64(len(part)))
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
