package shapeproxy

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The shaping tests check lower bounds on time (a first byte no earlier than the link allows,
// no more bytes per second than its caps): load only makes them later. Their upper bounds (the
// link is used at all, delays are not serialized) leave several times the expected duration.

// server runs handle on each connection accepted by a loopback listener until the test ends.
func server(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

func proxy(t *testing.T, target string, l Link) *Proxy {
	t.Helper()
	p, err := Listen("127.0.0.1:0", target, l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// sender writes n bytes to each connection, then closes it.
func sender(n int) func(net.Conn) {
	return func(c net.Conn) {
		buf := make([]byte, 64<<10)
		for left := n; left > 0; {
			k, err := c.Write(buf[:min(left, len(buf))])
			if err != nil {
				return
			}
			left -= k
		}
	}
}

func randBytes(n int, seed uint64) []byte {
	var key [32]byte
	key[0] = byte(seed)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

func TestProfiles(t *testing.T) {
	for _, l := range Profiles() {
		got, err := Profile(l.Name)
		if err != nil || got != l {
			t.Errorf("Profile(%q) = %+v, %v", l.Name, got, err)
		}
	}
	if Loopback.Shaped() || !Region.Shaped() || !Slow.Shaped() {
		t.Errorf("Shaped: loopback %v, region %v, slow %v", Loopback.Shaped(), Region.Shaped(), Slow.Shaped())
	}
	if _, err := Profile("lan"); err == nil || !strings.Contains(err.Error(), `"lan"`) || !strings.Contains(err.Error(), "region") {
		t.Errorf("Profile(lan): %v, want an error naming it and the profiles", err)
	}
	if _, err := Listen("127.0.0.1:0", "127.0.0.1:1", Link{Name: "bad", Latency: -time.Second}); err == nil || !strings.Contains(err.Error(), "Latency") {
		t.Errorf("negative latency: %v, want an error naming Latency", err)
	}
}

// Bytes pass unchanged both ways through a shaped link, and half-closes pass through: the
// server sees the client's EOF after all its bytes, and the client sees the server's.
func TestEchoThroughShapedLink(t *testing.T) {
	addr := server(t, func(c net.Conn) {
		if _, err := io.Copy(c, c); err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
	})
	p := proxy(t, addr, Link{Name: "test", Latency: 5 * time.Millisecond, ConnectCost: 5 * time.Millisecond, PerConn: 64 * MiB, Total: 128 * MiB, UpPerConn: 64 * MiB})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			want := randBytes(3<<20+17, uint64(i))
			c := dial(t, p)
			go func() {
				c.Write(want)
				c.CloseWrite()
			}()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, want) {
				t.Errorf("conn %d: echoed %d bytes (err %v), want the %d sent", i, len(got), err, len(want))
			}
		}()
	}
	wg.Wait()
	if st := p.Stats(); st.Conns != 4 || st.Down != 4*(3<<20+17) || st.Up != st.Down {
		t.Errorf("stats %+v, want 4 connections and %d bytes each way", st, 4*(3<<20+17))
	}
}

// A request's first byte reaches the server Latency after it was sent, plus ConnectCost on a
// new connection; bytes sent one after another are each delayed Latency, not queued behind
// each other's delay.
func TestFirstByteDelay(t *testing.T) {
	const latency, connect = 200 * time.Millisecond, 150 * time.Millisecond
	type arrival struct {
		b  byte
		at time.Time
	}
	arrivals := make(chan arrival, 16)
	addr := server(t, func(c net.Conn) {
		buf := make([]byte, 16)
		for {
			n, err := c.Read(buf)
			now := time.Now()
			for _, b := range buf[:n] {
				arrivals <- arrival{b, now}
			}
			if err != nil {
				return
			}
		}
	})
	p := proxy(t, addr, Link{Name: "test", Latency: latency, ConnectCost: connect})
	sent := map[byte]time.Time{}
	start := time.Now()
	c := dial(t, p)
	send := func(b byte) {
		sent[b] = time.Now()
		if _, err := c.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
	}
	send('a')
	a := <-arrivals
	if d := a.at.Sub(start); a.b != 'a' || d < latency+connect {
		t.Errorf("first byte of a new connection: %q after %v, want 'a' after at least %v", a.b, d, latency+connect)
	}
	send('b')
	a = <-arrivals
	if d := a.at.Sub(sent['b']); a.b != 'b' || d < latency {
		t.Errorf("a request on an open connection: %q after %v, want 'b' after at least %v", a.b, d, latency)
	}
	// Five bytes 20 ms apart: each arrives its own Latency after it was sent, the last well
	// before the 5 × Latency a serialized delay would take.
	for _, b := range []byte("12345") {
		send(b)
		time.Sleep(20 * time.Millisecond)
	}
	var last time.Time
	for _, want := range []byte("12345") {
		a := <-arrivals
		if d := a.at.Sub(sent[want]); a.b != want || d < latency {
			t.Errorf("pipelined byte %q: %q after %v, want after at least %v", want, a.b, d, latency)
		}
		last = a.at
	}
	if d := last.Sub(sent['1']); d > 5*latency/2 {
		t.Errorf("five pipelined bytes took %v from the first sent to the last arrived: the delays add up (one delay is %v)", d, latency)
	}
}

// drain reads everything from c and returns how long it took from start and how much came.
func drain(t *testing.T, c net.Conn, start time.Time) (time.Duration, int) {
	t.Helper()
	n, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Error(err)
	}
	return time.Since(start), int(n)
}

// One connection carries no more than PerConn bytes/s.
func TestPerConnectionCap(t *testing.T) {
	const size, perConn = 8 << 20, 16 * MiB
	p := proxy(t, server(t, sender(size)), Link{Name: "test", PerConn: perConn})
	start := time.Now()
	d, n := drain(t, dial(t, p), start)
	ideal := time.Duration(float64(size) / perConn * float64(time.Second))
	t.Logf("%d bytes in %v: %.1f MiB/s (cap %d MiB/s)", n, d, float64(n)/MiB/d.Seconds(), perConn/MiB)
	if n != size {
		t.Fatalf("%d bytes, want %d", n, size)
	}
	if d < ideal*95/100 {
		t.Errorf("%d bytes in %v, faster than the %d MiB/s cap allows (%v)", size, d, perConn/MiB, ideal)
	}
	if d > 4*ideal+time.Second {
		t.Errorf("%d bytes in %v: the link carried less than a quarter of its cap", size, d)
	}
}

// 16 connections at once share Total: together no more than Total bytes/s, each about its
// fair share. The server starts sending once all are connected, and turns are granted in
// turn, so the first to finish is about a turn (of 8) ahead of the last.
func TestTotalCapShared(t *testing.T) {
	const conns, size, perConn, total = 16, 8 << 20, 32 * MiB, 128 * MiB
	var accepted sync.WaitGroup
	accepted.Add(conns)
	send := sender(size)
	p := proxy(t, server(t, func(c net.Conn) {
		accepted.Done()
		accepted.Wait()
		send(c)
	}), Link{Name: "test", PerConn: perConn, Total: total})
	start := time.Now()
	took := make([]time.Duration, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", p.Addr())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			var n int
			took[i], n = drain(t, c, start)
			if n != size {
				t.Errorf("conn %d: %d bytes, want %d", i, n, size)
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	ideal := time.Duration(float64(conns*size-downTurn) / total * float64(time.Second))
	t.Logf("%d × %d bytes in %v: %.1f MiB/s (cap %d MiB/s); connections took %v to %v", conns, size, d, float64(conns*size)/MiB/d.Seconds(), total/MiB, slices.Min(took), slices.Max(took))
	if d < ideal*95/100 {
		t.Errorf("%d connections carried %d bytes in %v, faster than the %d MiB/s total cap allows (%v)", conns, conns*size, d, total/MiB, ideal)
	}
	if d > 4*ideal+time.Second {
		t.Errorf("%d connections took %v: the link carried less than a quarter of its total cap", conns, d)
	}
	if lo, hi := slices.Min(took), slices.Max(took); lo < hi/2 {
		t.Errorf("connections finished between %v and %v: the total is not shared fairly", lo, hi)
	}
}

// The client-to-server direction has its own cap when asked.
func TestUploadCap(t *testing.T) {
	const size, up = 4 << 20, 8 * MiB
	got := make(chan int64, 1)
	addr := server(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- n
	})
	p := proxy(t, addr, Link{Name: "test", UpPerConn: up})
	c := dial(t, p)
	start := time.Now()
	if _, err := c.Write(make([]byte, size)); err != nil {
		t.Fatal(err)
	}
	c.CloseWrite()
	n := <-got
	d := time.Since(start)
	ideal := time.Duration(float64(size-upBufSize) / up * float64(time.Second))
	if n != size || d < ideal*95/100 {
		t.Errorf("uploaded %d bytes in %v, want %d in at least %v", n, d, size, ideal)
	}
}

// A target that does not answer resets the client's connection; Close ends open connections.
func TestDialErrorAndClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	p := proxy(t, dead, Region)
	// The reset may come before the client's connect returns, or at its first read.
	if c, err := net.Dial("tcp", p.Addr()); err == nil {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read through a proxy to a dead target: %v, want a reset", err)
		}
		c.Close()
	}
	if st := p.Stats(); st.DialErrors != 1 {
		t.Errorf("dial errors %d, want 1", st.DialErrors)
	}

	p = proxy(t, server(t, func(c net.Conn) { io.Copy(io.Discard, c) }), Region)
	c := dial(t, p)
	c.Write([]byte("x"))
	done := make(chan error, 1)
	go func() {
		c.SetReadDeadline(time.Now().Add(time.Minute))
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := <-done; err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read of a connection the proxy closed: %v, want an error or EOF", err)
	}
}

// A connection keeps no credit while idle: short responses on a warm connection, each after a
// pause, still take their size ÷ PerConn (a token bucket with a turn's burst passed them at
// once, which made small ranged GETs look free).
func TestNoCreditWhileIdle(t *testing.T) {
	const size, perConn, rounds = 512 << 10, 8 * MiB, 3
	p := proxy(t, server(t, func(c net.Conn) {
		req := make([]byte, 1)
		for {
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if _, err := c.Write(randBytes(size, 1)); err != nil {
				return
			}
		}
	}), Link{Name: "test", PerConn: perConn})
	c := dial(t, p)
	req, buf := []byte{'?'}, make([]byte, size)
	ideal := time.Duration(float64(size) / perConn * float64(time.Second))
	for i := range rounds {
		time.Sleep(3 * ideal) // idle long enough for a bucket to refill
		start := time.Now()
		if _, err := c.Write(req); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < ideal*95/100 {
			t.Errorf("response %d after a pause: %d bytes in %v, faster than %d MiB/s allows (%v)", i, size, d, perConn/MiB, ideal)
		}
	}
}
