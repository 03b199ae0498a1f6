package vfs

import (
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestMetaCache(t *testing.T) {
	clk := &fakeClock{t0}
	m := NewMetaCache(time.Minute, 10, 10, clk.now)
	k := MetaKey("c", "d/f")
	m.PutFound(k, Info{Kind: KindFile, Gen: 1})
	if info, at, found, _ := m.Get(k); !found || info.Gen != 1 || !at.Equal(t0) {
		t.Fatalf("fresh entry: %+v %v %v", info, at, found)
	}
	m.PutMissing(k)
	if _, _, found, missing := m.Get(k); found || !missing {
		t.Fatal("negative entry not served")
	}
	clk.t = t0.Add(2 * time.Minute)
	if _, _, found, missing := m.Get(k); found || missing {
		t.Fatal("entry older than the TTL served")
	}

	// What a request found is dated by when it started: an older answer expires first.
	m.PutFoundAt(k, Info{Gen: 2}, clk.t.Add(-50*time.Second))
	clk.t = clk.t.Add(20 * time.Second)
	if _, _, found, _ := m.Get(k); found {
		t.Fatal("answer dated by its request's start kept past the TTL")
	}

	m.PutFound(MetaKey("c", "d"), Info{Kind: KindDir})
	m.PutFound(MetaKey("c", "d/x"), Info{})
	m.PutMissing(MetaKey("c", "d/y"))
	m.PutFound(MetaKey("c", "dz"), Info{})
	m.ForgetTree(MetaKey("c", "d"))
	for _, p := range []string{"d", "d/x", "d/y"} {
		if _, _, found, missing := m.Get(MetaKey("c", p)); found || missing {
			t.Errorf("%s survived ForgetTree", p)
		}
	}
	if _, _, found, _ := m.Get(MetaKey("c", "dz")); !found {
		t.Error("ForgetTree removed a sibling with the same prefix")
	}
	m.ForgetTree(MetaKey("c", "")) // the connection root: everything of the connection
	if _, _, found, _ := m.Get(MetaKey("c", "dz")); found {
		t.Error("ForgetTree of the root kept an entry")
	}

	off := NewMetaCache(0, 10, 10, clk.now)
	off.PutFound(k, Info{})
	if _, _, found, _ := off.Get(k); found {
		t.Error("a cache with TTL 0 remembers")
	}
}
