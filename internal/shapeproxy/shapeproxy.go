package shapeproxy

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// MiB is a mebibyte, for bandwidths in bytes/s.
const MiB = 1 << 20

// Link is the shape of a network path. The zero Link (but for its name) shapes nothing.
type Link struct {
	// Name names the profile ("region").
	Name string
	// Latency is how long each byte from the client takes to reach the server.
	Latency time.Duration
	// ConnectCost holds a new connection's first byte this much longer (its handshakes).
	ConnectCost time.Duration
	// PerConn and Total cap the server-to-client bytes/s of each connection and of all
	// connections together (0: no cap).
	PerConn, Total int64
	// UpPerConn and UpTotal cap the client-to-server bytes/s the same way (0: no cap).
	UpPerConn, UpTotal int64
}

// The profiles, scaled to a small machine: GCS seen from a VM in the bucket's region is ~20 ms
// to the first byte, 100–200 MiB/s a stream and 1–10 GB/s a VM; Region has that shape at 1/4
// to 1/25 of the bandwidth, Slow three times the delays at half the bandwidth.
var (
	// Loopback is no proxy at all.
	Loopback = Link{Name: "loopback"}
	// Region: 20 ms to the first byte, +40 ms a new connection, 50 MiB/s a connection,
	// 400 MiB/s in all.
	Region = Link{Name: "region", Latency: 20 * time.Millisecond, ConnectCost: 40 * time.Millisecond, PerConn: 50 * MiB, Total: 400 * MiB}
	// Slow: 60 ms to the first byte, +120 ms a new connection, 25 MiB/s a connection,
	// 200 MiB/s in all.
	Slow = Link{Name: "slow", Latency: 60 * time.Millisecond, ConnectCost: 120 * time.Millisecond, PerConn: 25 * MiB, Total: 200 * MiB}
)

// Profiles lists the named profiles, unshaped first.
func Profiles() []Link { return []Link{Loopback, Region, Slow} }

// Profile returns the profile called name.
func Profile(name string) (Link, error) {
	var names []string
	for _, l := range Profiles() {
		if l.Name == name {
			return l, nil
		}
		names = append(names, l.Name)
	}
	return Link{}, fmt.Errorf("unknown link profile %q (want one of %s)", name, strings.Join(names, ", "))
}

// Shaped reports whether l shapes anything (Loopback does not: it needs no proxy).
func (l Link) Shaped() bool { return l != Link{Name: l.Name} }

// String describes the link in a line.
func (l Link) String() string {
	if !l.Shaped() {
		return l.Name + ": no shaping"
	}
	s := fmt.Sprintf("%s: %v to the server, +%v a new connection", l.Name, l.Latency, l.ConnectCost)
	bw := func(what string, bps int64) {
		if bps > 0 {
			s += fmt.Sprintf(", %s %g MiB/s", what, float64(bps)/MiB)
		}
	}
	bw("down a connection", l.PerConn)
	bw("down in all", l.Total)
	bw("up a connection", l.UpPerConn)
	bw("up in all", l.UpTotal)
	return s
}

func (l Link) validate() error {
	switch {
	case l.Latency < 0:
		return fmt.Errorf("link %q: Latency %v is negative", l.Name, l.Latency)
	case l.ConnectCost < 0:
		return fmt.Errorf("link %q: ConnectCost %v is negative", l.Name, l.ConnectCost)
	case l.PerConn < 0 || l.Total < 0 || l.UpPerConn < 0 || l.UpTotal < 0:
		return fmt.Errorf("link %q: a bandwidth is negative (0 means no cap)", l.Name)
	}
	return nil
}

const (
	downBufSize = 256 << 10 // server to client: one read and one write per buffer
	upBufSize   = 64 << 10  // client to server: requests are small
	// downTurn is the bytes a connection asks the buckets for at a time, and their burst: a
	// turn costs a timer and a wake-up (1,600 a second at 400 MiB/s), and its bytes pass at
	// the end of the time the turn takes on the connection (5 ms at 50 MiB/s), so it is also
	// how much later than on a real link the first bytes of a response can arrive.
	downTurn = 256 << 10
	// upQueue bounds the segments of one connection in the delay line (at most 16 MiB):
	// like a TCP window, it caps a connection's upload at upQueue×upBufSize per Latency.
	upQueue = 256
)

// Stats counts what the proxy carried.
type Stats struct {
	Conns      int64 // connections accepted
	DialErrors int64 // connections reset because the target did not answer
	Down, Up   int64 // bytes server to client, client to server
}

// Proxy forwards TCP connections to a target through a shaped link. It is safe for concurrent
// use.
type Proxy struct {
	link     Link
	target   string
	ln       net.Listener
	down, up *rate.Limiter // the shared caps, nil when none
	done     chan struct{} // closed by Close
	upBufs   sync.Pool
	downBufs sync.Pool
	wg       sync.WaitGroup

	mu     sync.Mutex // guards conns and closed
	conns  map[net.Conn]struct{}
	closed bool

	nConns, nDialErr, nDown, nUp atomic.Int64
}

// Listen starts a proxy listening on addr ("127.0.0.1:0" for any port) that forwards each
// connection to target (host:port) through link.
func Listen(addr, target string, link Link) (*Proxy, error) {
	if err := link.validate(); err != nil {
		return nil, fmt.Errorf("shapeproxy: %w", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("shapeproxy: %w", err)
	}
	p := &Proxy{
		link:   link,
		target: target,
		ln:     ln,
		down:   limiter(link.Total, downTurn),
		up:     limiter(link.UpTotal, upBufSize),
		done:   make(chan struct{}),
		conns:  map[net.Conn]struct{}{},
	}
	p.upBufs.New = func() any { b := make([]byte, upBufSize); return &b }
	p.downBufs.New = func() any { b := make([]byte, downBufSize); return &b }
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// limiter is a token bucket of bps bytes/s holding one turn's worth (the shared caps), or nil for no cap.
func limiter(bps int64, burst int) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(bps), burst)
}

// Addr is the address the proxy listens on (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Link is the proxy's link.
func (p *Proxy) Link() Link { return p.link }

// Stats returns the counters so far.
func (p *Proxy) Stats() Stats {
	return Stats{Conns: p.nConns.Load(), DialErrors: p.nDialErr.Load(), Down: p.nDown.Load(), Up: p.nUp.Load()}
}

// Close stops listening, closes every connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors or the like: try again shortly.
			select {
			case <-p.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		p.nConns.Add(1)
		p.wg.Add(1)
		go p.serve(c)
	}
}

// track registers a connection pair for Close; false once the proxy is closed.
func (p *Proxy) track(cs ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
	return true
}

func (p *Proxy) untrack(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		delete(p.conns, c)
	}
}

// serve carries one client connection c to a new connection to the target.
func (p *Proxy) serve(c net.Conn) {
	defer p.wg.Done()
	ready := time.Now().Add(p.link.ConnectCost)
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		p.nDialErr.Add(1)
		abort(c)
		return
	}
	if !p.track(c, s) {
		c.Close()
		s.Close()
		return
	}
	defer p.untrack(c, s)
	errc := make(chan error, 2)
	go func() { errc <- p.upstream(c, s, ready, newPacer(p.link.UpPerConn)) }()
	go func() { errc <- p.downstream(s, c, newPacer(p.link.PerConn)) }()
	for range 2 {
		if err := <-errc; err != nil {
			// One side failed (or Close closed it): end the other direction too, resetting
			// the side still open as the failure would have.
			abort(c)
			abort(s)
		}
	}
	c.Close()
	s.Close()
}

// downstream copies server to client within the caps. At the server's EOF it half-closes the
// client side. The buckets are asked for downTurn bytes at a time (a turn) when the first
// bytes of a turn were read, and the turn's further reads are capped to what it has left:
// every backlogged connection gets the same bytes per turn however its reads split, so
// reservations granted in turn share Total evenly (charging each read's own size would favour
// the connections whose socket buffers the kernel grew first). A turn's unused rest carries
// over to the connection's next response.
func (p *Proxy) downstream(s, c net.Conn, perConn *pacer) error {
	bp := p.downBufs.Get().(*[]byte)
	defer p.downBufs.Put(bp)
	buf := *bp
	credit := 0 // bytes of the current turn not sent yet
	for {
		n, rerr := s.Read(buf[:min(cmp.Or(credit, len(buf)), len(buf))])
		if n > 0 {
			if credit == 0 {
				if !p.wait(perConn, p.down, downTurn) {
					return net.ErrClosed
				}
				credit = downTurn
			}
			credit -= n
			if _, err := c.Write(buf[:n]); err != nil {
				return err
			}
			p.nDown.Add(int64(n))
		}
		if rerr == io.EOF {
			return closeWrite(c)
		}
		if rerr != nil {
			return rerr
		}
	}
}

// segment is a piece of the client's bytes in the delay line, due at the server at due.
type segment struct {
	b   *[]byte
	n   int
	due time.Time
}

// upstream copies client to server through the delay line: a reader stamps each segment with
// its due time (read time + Latency, no earlier than ready + Latency) and a writer sends each
// when due. At the client's EOF, once every segment is sent, it half-closes the server side.
func (p *Proxy) upstream(c, s net.Conn, ready time.Time, perConn *pacer) error {
	q := make(chan segment, upQueue)
	stop := make(chan struct{}) // the writer gave up: the reader must not block on q
	defer close(stop)
	rerrc := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(q)
		credit := 0 // as in downstream
		for {
			bp := p.upBufs.Get().(*[]byte)
			n, err := c.Read((*bp)[:cmp.Or(credit, upBufSize)])
			if n > 0 {
				if credit == 0 {
					if !p.wait(perConn, p.up, upBufSize) {
						p.upBufs.Put(bp)
						rerrc <- net.ErrClosed
						return
					}
					credit = upBufSize
				}
				credit -= n
				at := time.Now()
				if at.Before(ready) {
					at = ready
				}
				select {
				case q <- segment{b: bp, n: n, due: at.Add(p.link.Latency)}:
				case <-stop:
					p.upBufs.Put(bp)
					rerrc <- nil
					return
				}
			} else {
				p.upBufs.Put(bp)
			}
			if err != nil {
				rerrc <- err
				return
			}
		}
	}()
	for sg := range q {
		if !p.sleepUntil(sg.due) {
			p.upBufs.Put(sg.b)
			return net.ErrClosed
		}
		_, err := s.Write((*sg.b)[:sg.n])
		p.upBufs.Put(sg.b)
		if err != nil {
			return err
		}
		p.nUp.Add(int64(sg.n))
	}
	if err := <-rerrc; err != io.EOF {
		return err
	}
	return closeWrite(s)
}

// pacer is one connection's cap in one direction: a clock of when the bytes it passed so far
// are through at its rate. Unlike a token bucket it keeps no credit while the connection is
// idle, so a response that starts after a pause still takes its size ÷ rate, as it does on a
// warm TCP connection: a bucket holding a turn's worth would pass short responses at once and
// make small requests look free.
type pacer struct {
	rate float64 // bytes per second
	end  time.Time
}

// newPacer returns a pacer of bps bytes/s, or nil for no cap.
func newPacer(bps int64) *pacer {
	if bps <= 0 {
		return nil
	}
	return &pacer{rate: float64(bps)}
}

// turn returns when n more bytes, asked for at now, are through.
func (q *pacer) turn(now time.Time, n int) time.Time {
	if q.end.Before(now) {
		q.end = now
	}
	q.end = q.end.Add(time.Duration(float64(n) / q.rate * float64(time.Second)))
	return q.end
}

// wait passes a turn of n bytes through the connection's pacer and the shared bucket (either
// may be nil): it sleeps until the turn is through the connection at its rate and the shared
// bucket allows it. It returns false if the proxy closed meanwhile.
func (p *Proxy) wait(perConn *pacer, shared *rate.Limiter, n int) bool {
	now := time.Now()
	until := now
	if perConn != nil {
		until = perConn.turn(now, n)
	}
	if shared != nil {
		if r := shared.ReserveN(now, n); r.OK() {
			until = later(until, now.Add(r.DelayFrom(now)))
		}
	}
	return p.sleepUntil(until)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// sleepUntil sleeps until t; false if the proxy closed first.
func (p *Proxy) sleepUntil(t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-p.done:
		return false
	}
}

func closeWrite(c net.Conn) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}

// abort closes c with a reset (TCP RST) rather than a FIN.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
