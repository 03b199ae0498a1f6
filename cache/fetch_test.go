package cache

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// TestChunkFetchedInParallelParts: a chunk is fetched as parts of the part size, all in flight
// at once; readers get the bytes of each part as they arrive, and the chunk's record holds the
// parts' combined CRC32C (the generation passes its check).
func TestChunkFetchedInParallelParts(t *testing.T) {
	src := newFakeSource()
	ref := pattern(21, 3*testChunk+777)
	obj := withCRC(src.put("parts", 21, ref), ref)
	const part = testChunk / 4
	src.gate = make(chan struct{})
	src.started = make(chan request, 64)
	c := openTest(t, Options{ChunkSize: testChunk, Readahead: -1, partSize: part})
	done := make(chan error, 1)
	go func() {
		p := make([]byte, 100)
		_, err := c.ReadAt(context.Background(), src, obj, p, 0)
		if err == nil && !bytes.Equal(p, ref[:100]) {
			err = errors.New("wrong bytes")
		}
		done <- err
	}()
	// All four parts of chunk 0 are requested before any answers.
	seen := map[int64]bool{}
	for len(seen) < 4 {
		select {
		case r := <-src.started:
			if r.N != part || r.Off%part != 0 || r.Off >= testChunk {
				t.Fatalf("request %+v, want a %d-byte part of chunk 0", r, part)
			}
			seen[r.Off] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("parts requested before the first answered: %v, want 4", seen)
		}
	}
	close(src.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustEqual(t, "whole object", readAll(t, c, src, obj, 5000), ref)
	waitIdle(t, c)
	if st := c.Stats(); st.ChecksumMismatches != 0 || st.Chunks != 4 {
		t.Fatalf("stats %+v, want 4 chunks cached and no mismatch", st)
	}
	if err := c.checkInvariants(true); err != nil {
		t.Fatal(err)
	}
}

// TestPartFaults: parts that break off, come back short or fail to open are resumed or
// refetched, and a flipped byte in one part fails the generation's check; the reader never gets
// wrong bytes without an error at the end, and a second read gets the object's bytes.
func TestPartFaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		body func(n int64, b []byte) io.Reader
		flip bool
	}{
		{"reset mid-part", func(n int64, b []byte) io.Reader {
			if n%3 == 1 {
				return io.MultiReader(bytes.NewReader(b[:len(b)/3]), errReader{})
			}
			return bytes.NewReader(b)
		}, false},
		{"truncated part", func(n int64, b []byte) io.Reader {
			if n%4 == 2 {
				return bytes.NewReader(b[:len(b)-100])
			}
			return bytes.NewReader(b)
		}, false},
		{"flipped byte", func(n int64, b []byte) io.Reader {
			if n == 6 {
				return bytes.NewReader(flipped(b, 17))
			}
			return bytes.NewReader(b)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newFakeSource()
			ref := pattern(22, 5*testChunk+999)
			obj := withCRC(src.put("faults", 22, ref), ref)
			var n atomic.Int64
			src.body = func(r request, b []byte) io.Reader { return tc.body(n.Add(1), b) }
			c := openTest(t, Options{ChunkSize: testChunk, partSize: testChunk / 4})
			got, err := readToEnd(c, src, obj, 7000)
			if tc.flip {
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("read with a flipped part: %v, want ErrChecksum at the end", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				mustEqual(t, "read through faults", got, ref)
			}
			waitIdle(t, c)
			src.body = nil
			mustEqual(t, "second read", readAll(t, c, src, obj, 7000), ref)
			waitIdle(t, c)
			if err := c.checkInvariants(true); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestLinkPartSize: the part size follows the link: a quarter chunk before anything is learnt,
// the whole chunk on a local server, and about the bytes one GET carries during one first-byte
// delay otherwise, within [minPart, chunk].
func TestLinkPartSize(t *testing.T) {
	const chunk = 8 << 20
	var l link
	if got := l.partSize(chunk); got != 2<<20 {
		t.Fatalf("before any sample: %d, want 2 MiB", got)
	}
	l.observe(time.Millisecond, 8<<20, 9*time.Millisecond) // loopback: 1 ms, 1 GiB/s
	if got := l.partSize(chunk); got != chunk {
		t.Fatalf("local server: %d, want the chunk", got)
	}
	var r link
	for range 50 {
		r.observe(40*time.Millisecond, 2<<20, 80*time.Millisecond) // 40 ms, 50 MiB/s
	}
	if got := r.partSize(chunk); got != 2<<20 {
		t.Fatalf("40 ms, 50 MiB/s: %d, want 2 MiB", got)
	}
	// Late goroutines and new connections make some responses look slower, and their bodies
	// then arrive at once: the shortest delay is the link's, and the rate counts from it, so
	// the rate learnt stays at most the link's.
	for range 5 {
		r.observe(90*time.Millisecond, 2<<20, 92*time.Millisecond)
	}
	if d, rate := r.shape(); d != 40*time.Millisecond || rate > 50<<20 || rate < 35<<20 {
		t.Fatalf("after late answers: delay %v, rate %d, want 40ms and at most 50 MiB/s", d, rate)
	}
	var s link
	for range 50 {
		s.observe(20*time.Millisecond, 1<<20, 120*time.Millisecond) // 20 ms, 10 MiB/s
	}
	if got := s.partSize(chunk); got != minPart {
		t.Fatalf("20 ms, 10 MiB/s: %d, want the minimum", got)
	}
	if n := len(s.split(5<<20+1, chunk, 0)); n != 6 {
		t.Fatalf("5 MiB + 1 in 1 MiB parts: %d parts, want 6", n)
	}
}
