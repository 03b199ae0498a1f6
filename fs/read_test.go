package fs

import (
	"fmt"
	"os"
	"testing"
)

func TestReadSizes(t *testing.T) {
	const chunk = 1 << 20
	e := newEnv(t, envOptions{chunkSize: chunk})
	sizes := []int{0, 1, chunk - 1, chunk, chunk + 1, 3*chunk + 12345}
	for i, n := range sizes {
		e.put(testBucket, fmt.Sprintf("sizes/f%d", n), randBytes(uint64(i), n))
	}
	for i, n := range sizes {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p := e.path("c", fmt.Sprintf("sizes/f%d", n))
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() != int64(n) {
				t.Fatalf("size %d, want %d", fi.Size(), n)
			}
			got, gotN := fileSum(t, p)
			if gotN != int64(n) || got != sum(randBytes(uint64(i), n)) {
				t.Fatalf("content of %d-byte object differs (read %d bytes)", n, gotN)
			}
		})
	}
}
