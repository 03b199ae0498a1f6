package cache

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDroppedGenerationIsNoWriteError: a chunk on its way to disk whose generation is dropped
// meanwhile (it failed a check) is not stored, and that is not a write error: nothing is
// counted as one, and no "cannot write to the cache dir" is logged (the dir is writable).
func TestDroppedGenerationIsNoWriteError(t *testing.T) {
	src := newFakeSource()
	ref := pattern(40, 2*testChunk)
	obj := withCRC(src.put("dropped", 40, ref), ref)
	var logs syncBuffer
	entered, release := make(chan struct{}, 16), make(chan struct{})
	opts := Options{ChunkSize: testChunk, Readahead: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	opts.beforeWrite = func() { entered <- struct{}{}; <-release }
	c := openTest(t, opts)
	buf := make([]byte, 4096)
	if _, err := c.ReadAt(context.Background(), src, obj, buf, 0); err != nil {
		t.Fatal(err)
	}
	<-entered      // the chunk's write is under way
	c.poison(obj)  // and its generation is dropped meanwhile
	close(release) // the write goes on, and must not store it
	waitIdle(t, c)
	if st := c.Stats(); st.WriteErrors != 0 {
		t.Errorf("stats %+v: a dropped generation counted as a write error", st)
	}
	if strings.Contains(logs.String(), "cannot write to the cache dir") {
		t.Errorf("a dropped generation was logged as a write failure:\n%s", logs.String())
	}
}
