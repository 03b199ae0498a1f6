package control

import (
	"context"
	"log/slog"
	"sync"
	"unicode/utf8"
)

// Limits of one captured record, so that a pathological log line cannot make the ring big.
const (
	maxAttrs      = 24
	maxValueBytes = 512
)

// ErrorRing keeps the last warnings and errors logged through its Handler, for plxfs status.
// It is safe for concurrent use.
type ErrorRing struct {
	mu    sync.Mutex // guards the fields below; never held while calling another handler
	recs  []LogRecord
	next  int // index of the slot the next record goes to, once recs is full
	total int64
}

// NewErrorRing returns a ring that keeps the last size records (size < 1 means 1).
func NewErrorRing(size int) *ErrorRing {
	return &ErrorRing{recs: make([]LogRecord, 0, max(size, 1))}
}

// Records returns the kept records, oldest first.
func (r *ErrorRing) Records() []LogRecord {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]LogRecord, 0, len(r.recs))
	out = append(out, r.recs[r.next:]...)
	return append(out, r.recs[:r.next]...)
}

// Total is the number of records ever added, kept or not.
func (r *ErrorRing) Total() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

func (r *ErrorRing) add(rec LogRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.total++
	if len(r.recs) < cap(r.recs) {
		r.recs = append(r.recs, rec)
		return
	}
	r.recs[r.next] = rec
	r.next = (r.next + 1) % len(r.recs)
}

// Handler returns a slog.Handler that records every record at level WARN or above in r and
// passes every record to next as next would have handled it alone (its level filter included).
// Warnings are captured even when next's level is ERROR.
func (r *ErrorRing) Handler(next slog.Handler) slog.Handler {
	return &ringHandler{next: next, ring: r}
}

type ringHandler struct {
	next   slog.Handler
	ring   *ErrorRing
	attrs  []Attr // from WithAttrs, already flattened under their groups
	prefix string // open groups, "a.b." (for attributes added later)
}

func (h *ringHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.next.Enabled(ctx, l)
}

func (h *ringHandler) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= slog.LevelWarn {
		lr := LogRecord{Time: rec.Time, Level: rec.Level.String(), Message: rec.Message}
		lr.Attrs = append(lr.Attrs, h.attrs...)
		rec.Attrs(func(a slog.Attr) bool {
			lr.Attrs = flatten(lr.Attrs, h.prefix, a)
			return len(lr.Attrs) < maxAttrs
		})
		if len(lr.Attrs) > maxAttrs {
			lr.Attrs = lr.Attrs[:maxAttrs]
		}
		h.ring.add(lr)
	}
	if h.next.Enabled(ctx, rec.Level) {
		return h.next.Handle(ctx, rec)
	}
	return nil
}

func (h *ringHandler) WithAttrs(as []slog.Attr) slog.Handler {
	attrs := append([]Attr(nil), h.attrs...)
	for _, a := range as {
		attrs = flatten(attrs, h.prefix, a)
	}
	return &ringHandler{next: h.next.WithAttrs(as), ring: h.ring, attrs: attrs, prefix: h.prefix}
}

func (h *ringHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &ringHandler{next: h.next.WithGroup(name), ring: h.ring, attrs: h.attrs, prefix: h.prefix + name + "."}
}

// flatten appends a (resolved; groups expanded into dotted keys) to out, as slog's text
// handler would show it.
func flatten(out []Attr, prefix string, a slog.Attr) []Attr {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			out = flatten(out, p, g)
		}
		return out
	}
	if a.Key == "" {
		return out
	}
	return append(out, Attr{Key: prefix + a.Key, Value: truncate(v.String(), maxValueBytes)})
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut with "…".
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
