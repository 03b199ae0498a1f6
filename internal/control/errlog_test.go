package control_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/plxfs/plxfs/internal/control"
)

func attrs(r control.LogRecord) map[string]string {
	out := map[string]string{}
	for _, a := range r.Attrs {
		out[a.Key] = a.Value
	}
	return out
}

func TestErrorRingCapturesWarningsAndErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		log       func(l *slog.Logger)
		wantMsg   []string
		wantAttrs map[string]string // of the last record
	}{
		{"levels below warn are not kept", func(l *slog.Logger) {
			l.Debug("d")
			l.Info("i")
			l.Warn("w")
			l.Error("e")
		}, []string{"w", "e"}, map[string]string{}},
		{"attributes of the call", func(l *slog.Logger) {
			l.Error("upload failed", "connection", "ds1", "path", "a/b.txt", "err", errors.New("boom"))
		}, []string{"upload failed"}, map[string]string{"connection": "ds1", "path": "a/b.txt", "err": "boom"}},
		{"attributes of With and groups are flattened", func(l *slog.Logger) {
			l.With("connection", "ds2").WithGroup("obj").Warn("slow", "name", "x", slog.Group("gen", "n", 7))
		}, []string{"slow"}, map[string]string{"connection": "ds2", "obj.name": "x", "obj.gen.n": "7"}},
		{"long values are cut", func(l *slog.Logger) {
			l.Warn("big", "v", strings.Repeat("é", 1000))
		}, []string{"big"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ring := control.NewErrorRing(10)
			l := slog.New(ring.Handler(slog.NewTextHandler(&bytes.Buffer{}, nil)))
			tc.log(l)
			recs := ring.Records()
			var msgs []string
			for _, r := range recs {
				msgs = append(msgs, r.Message)
				if r.Time.IsZero() || (r.Level != "WARN" && r.Level != "ERROR") {
					t.Errorf("record %+v: want a time and level WARN or ERROR", r)
				}
			}
			if strings.Join(msgs, ",") != strings.Join(tc.wantMsg, ",") {
				t.Fatalf("kept %q, want %q", msgs, tc.wantMsg)
			}
			last := recs[len(recs)-1]
			if tc.wantAttrs != nil {
				got := attrs(last)
				if len(got) != len(tc.wantAttrs) {
					t.Errorf("attrs %v, want %v", got, tc.wantAttrs)
				}
				for k, v := range tc.wantAttrs {
					if got[k] != v {
						t.Errorf("attr %s = %q, want %q", k, got[k], v)
					}
				}
			}
			for _, a := range last.Attrs {
				if len(a.Value) > 520 {
					t.Errorf("attr %s kept %d bytes", a.Key, len(a.Value))
				}
				if !strings.ContainsRune(a.Value, 'é') && a.Key == "v" {
					t.Errorf("cut value %q lost its runes", a.Value)
				}
			}
		})
	}
}

// The ring keeps the last N records, oldest first, and counts all of them.
func TestErrorRingWraps(t *testing.T) {
	ring := control.NewErrorRing(3)
	l := slog.New(ring.Handler(slog.NewTextHandler(&bytes.Buffer{}, nil)))
	for _, m := range []string{"1", "2", "3", "4", "5"} {
		l.Warn(m)
	}
	var got []string
	for _, r := range ring.Records() {
		got = append(got, r.Message)
	}
	if strings.Join(got, "") != "345" {
		t.Errorf("kept %q, want 3 4 5", got)
	}
	if ring.Total() != 5 {
		t.Errorf("Total %d, want 5", ring.Total())
	}
}

// The wrapped handler still logs exactly what it logged alone, level filter included: the
// ring sees warnings even when the log shows errors only.
func TestErrorRingPassesThrough(t *testing.T) {
	var buf bytes.Buffer
	ring := control.NewErrorRing(5)
	l := slog.New(ring.Handler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError})))
	l.Info("info")
	l.Warn("warn", "k", "v")
	l.With("c", "x").Error("error", "k", "v")
	out := buf.String()
	if strings.Contains(out, "info") || strings.Contains(out, "msg=warn") {
		t.Errorf("the log shows records below its level:\n%s", out)
	}
	if !strings.Contains(out, "msg=error c=x k=v") {
		t.Errorf("the log lacks the error line with its attributes:\n%s", out)
	}
	if n := len(ring.Records()); n != 2 {
		t.Errorf("ring kept %d records, want 2 (warn and error)", n)
	}
	if !l.Enabled(context.Background(), slog.LevelWarn) || l.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Enabled must be true for WARN (the ring wants it) and false for INFO")
	}
}

func TestHitRatio(t *testing.T) {
	for _, tc := range []struct {
		h, m int64
		want float64
	}{{0, 0, 0}, {3, 1, 0.75}, {0, 5, 0}, {5, 0, 1}} {
		if got := control.HitRatio(tc.h, tc.m); got != tc.want {
			t.Errorf("HitRatio(%d, %d) = %v, want %v", tc.h, tc.m, got, tc.want)
		}
	}
}
