package faultproxy

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Action is what a rule does to a request it applies to.
type Action int

const (
	// Status answers with Rule.Status (default 503) and a GCS-style JSON error body, without
	// forwarding the request.
	Status Action = iota
	// Reset forwards the request, passes After bytes of the response body, then resets the
	// connection (TCP RST). With After 0 nothing of the response is sent, not even headers.
	Reset
	// Truncate forwards the request, passes the headers (Content-Length included) and After
	// bytes of the body, then closes the connection normally: the client sees a short body.
	Truncate
	// Stall waits Rule.Stall, or until the request's context ends, then forwards the request
	// (or drops it if the context ended). With After > 0 it forwards at once and stalls the
	// response after After body bytes instead: a response that stops delivering bytes.
	Stall
	// Flip forwards the request and passes the whole response, headers and length unchanged,
	// except that one byte of the body is flipped (XOR 0xff): the byte at offset After, or,
	// with After < 0, at an offset drawn from the proxy's RNG below the response's
	// Content-Length (without one, within the first body write). Silent corruption: only a
	// checksum can tell. A body shorter than the offset passes untouched and is not counted.
	Flip
)

func (a Action) String() string {
	switch a {
	case Status:
		return "status"
	case Reset:
		return "reset"
	case Truncate:
		return "truncate"
	case Stall:
		return "stall"
	case Flip:
		return "flip"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Rule selects requests and the fault injected into them. The zero Rule matches every request
// and answers 503.
type Rule struct {
	// Name identifies the rule in Stats.ByRule (default "<action>#<index>").
	Name string
	// Method, when set, must equal the request method.
	Method string
	// Match lists substrings that must all occur in the request URI (path?query, escaped).
	Match []string
	Action
	// Status is the HTTP status for Status faults (default 503).
	Status int
	// After is the number of response body bytes passed before a Reset or Truncate cut or a
	// Stall's pause, or the offset of the body byte a Flip flips (< 0: a random offset).
	After int64
	// Stall is how long a Stall fault waits.
	Stall time.Duration
	// Skip lets the first Skip matching requests through untouched.
	Skip int
	// First, when > 0, limits the rule to that many faults.
	First int
	// Prob, when in (0, 1), applies the rule to a matching request with that probability.
	Prob float64
}

// Stats counts what the proxy saw and did.
type Stats struct {
	Requests int
	Faults   int
	ByRule   map[string]int // faults per rule name
}

// Proxy injects faults into the requests of the handler it wraps. It is safe for concurrent use.
type Proxy struct {
	mu    sync.Mutex // guards everything below
	rules []ruleState
	rng   *rand.Rand
	stats Stats
}

type ruleState struct {
	Rule
	matched int
	fired   int
}

// New returns a proxy with no rules. seed makes probabilistic rules reproducible.
func New(seed uint64) *Proxy {
	return &Proxy{rng: rand.New(rand.NewPCG(seed, 0x5eed)), stats: Stats{ByRule: map[string]int{}}}
}

// SetRules replaces the rules (and their match counters).
func (p *Proxy) SetRules(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = p.rules[:0:0]
	for _, r := range rules {
		p.addLocked(r)
	}
}

// Add appends a rule.
func (p *Proxy) Add(r Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.addLocked(r)
}

func (p *Proxy) addLocked(r Rule) {
	if r.Name == "" {
		r.Name = fmt.Sprintf("%s#%d", r.Action, len(p.rules))
	}
	r.Match = append([]string(nil), r.Match...)
	p.rules = append(p.rules, ruleState{Rule: r})
}

// Clear removes all rules: requests pass through untouched.
func (p *Proxy) Clear() { p.SetRules() }

// Stats returns a snapshot of the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.stats
	s.ByRule = make(map[string]int, len(p.stats.ByRule))
	for k, v := range p.stats.ByRule {
		s.ByRule[k] = v
	}
	return s
}

// ResetStats zeroes the counters (not the rules' match counters).
func (p *Proxy) ResetStats() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats = Stats{ByRule: map[string]int{}}
}

// pick returns the rule to apply to r, if any, and counts the request.
func (p *Proxy) pick(r *http.Request) (Rule, bool) {
	uri := r.URL.RequestURI()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stats.Requests++
	for i := range p.rules {
		rs := &p.rules[i]
		if rs.Method != "" && rs.Method != r.Method {
			continue
		}
		if !containsAll(uri, rs.Match) {
			continue
		}
		rs.matched++
		if rs.matched <= rs.Skip || (rs.First > 0 && rs.fired >= rs.First) {
			continue
		}
		if rs.Prob > 0 && rs.Prob < 1 && p.rng.Float64() >= rs.Prob {
			continue
		}
		return rs.Rule, true
	}
	return Rule{}, false
}

// fired records an injected fault. Reset and Truncate count only when they actually cut.
func (p *Proxy) fired(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.rules {
		if p.rules[i].Name == name {
			p.rules[i].fired++
			break
		}
	}
	p.stats.Faults++
	p.stats.ByRule[name]++
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Middleware wraps next; pass it as emulator.Options.Handler.
func (p *Proxy) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rule, ok := p.pick(r)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		switch rule.Action {
		case Status:
			p.fired(rule.Name)
			code := rule.Status
			if code == 0 {
				code = http.StatusServiceUnavailable
			}
			w.Header().Set("Content-Type", "application/json; charset=UTF-8")
			w.WriteHeader(code)
			msg, _ := json.Marshal("injected by faultproxy rule " + rule.Name)
			fmt.Fprintf(w, `{"error":{"code":%d,"message":%s}}`, code, msg)
		case Stall:
			if rule.After > 0 {
				sw := &stallWriter{w: w, after: rule.After, stall: rule.Stall, done: r.Context().Done(), onStall: func() { p.fired(rule.Name) }}
				next.ServeHTTP(sw, r)
				return
			}
			p.fired(rule.Name)
			t := time.NewTimer(rule.Stall)
			defer t.Stop()
			select {
			case <-t.C:
				next.ServeHTTP(w, r)
			case <-r.Context().Done():
			}
		case Reset, Truncate:
			// The fault is counted as the connection is cut, before the client can see it.
			cw := &cutWriter{w: w, after: rule.After, reset: rule.Action == Reset, onCut: func() { p.fired(rule.Name) }}
			next.ServeHTTP(cw, r)
			if !cw.cut && cw.reset && rule.After == 0 {
				cw.doCut() // the handler wrote nothing: drop the connection anyway
			}
		case Flip:
			fw := &flipWriter{w: w, at: rule.After, pick: p.intN, onFlip: func() { p.fired(rule.Name) }}
			next.ServeHTTP(fw, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// stallWriter passes a response through, pausing once after `after` body bytes.
type stallWriter struct {
	w       http.ResponseWriter
	after   int64
	stall   time.Duration
	done    <-chan struct{} // the request's context
	sent    int64
	stalled bool
	onStall func()
}

func (s *stallWriter) Header() http.Header  { return s.w.Header() }
func (s *stallWriter) WriteHeader(code int) { s.w.WriteHeader(code) }

func (s *stallWriter) Write(b []byte) (int, error) {
	if s.stalled || s.sent+int64(len(b)) <= s.after {
		n, err := s.w.Write(b)
		s.sent += int64(n)
		return n, err
	}
	k := s.after - s.sent
	n, err := s.w.Write(b[:k])
	s.sent += int64(n)
	if err != nil {
		return n, err
	}
	s.Flush() // the client has the bytes before the pause
	s.stalled = true
	s.onStall()
	t := time.NewTimer(s.stall)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.done:
		return n, errors.New("faultproxy: client gone during a stall")
	}
	m, err := s.w.Write(b[k:])
	s.sent += int64(m)
	return n + m, err
}

// Flush forwards flushes.
func (s *stallWriter) Flush() {
	if f, ok := s.w.(http.Flusher); ok {
		f.Flush()
	}
}

// intN draws from the proxy's RNG (n > 0).
func (p *Proxy) intN(n int64) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rng.Int64N(n)
}

// flipWriter passes a response through with the body byte at offset at flipped.
type flipWriter struct {
	w      http.ResponseWriter
	at     int64 // < 0: not chosen yet
	pick   func(n int64) int64
	sent   int64
	header bool
	done   bool
	onFlip func()
}

func (f *flipWriter) Header() http.Header { return f.w.Header() }

func (f *flipWriter) WriteHeader(code int) {
	if f.header {
		return
	}
	f.header = true
	if f.at < 0 {
		if n, err := strconv.ParseInt(f.w.Header().Get("Content-Length"), 10, 64); err == nil && n > 0 {
			f.at = f.pick(n)
		}
	}
	f.w.WriteHeader(code)
}

func (f *flipWriter) Write(b []byte) (int, error) {
	if !f.header {
		f.WriteHeader(http.StatusOK)
	}
	if f.at < 0 && len(b) > 0 {
		f.at = f.sent + f.pick(int64(len(b))) // no Content-Length: within this write
	}
	if !f.done && f.at >= f.sent && f.at < f.sent+int64(len(b)) {
		c := append([]byte(nil), b...) // never modify the handler's buffer
		c[f.at-f.sent] ^= 0xff
		f.done = true
		f.onFlip()
		b = c
	}
	n, err := f.w.Write(b)
	f.sent += int64(n)
	return n, err
}

// Flush forwards flushes.
func (f *flipWriter) Flush() {
	if fl, ok := f.w.(http.Flusher); ok {
		fl.Flush()
	}
}

var errCut = errors.New("faultproxy: response cut")

// cutWriter passes a response through until after body bytes, then cuts the connection.
type cutWriter struct {
	w      http.ResponseWriter
	after  int64
	reset  bool // RST instead of FIN
	sent   int64
	cut    bool
	header bool
	onCut  func() // called once, just before the connection is cut
}

func (c *cutWriter) Header() http.Header { return c.w.Header() }

func (c *cutWriter) WriteHeader(code int) {
	if c.cut || c.header {
		return
	}
	if c.reset && c.after == 0 {
		c.doCut()
		return
	}
	c.header = true
	c.w.WriteHeader(code)
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.cut {
		return 0, errCut
	}
	if !c.header {
		c.WriteHeader(http.StatusOK)
		if c.cut {
			return 0, errCut
		}
	}
	if left := c.after - c.sent; int64(len(b)) >= left {
		n, _ := c.w.Write(b[:left])
		c.sent += int64(n)
		c.doCut()
		return n, errCut
	}
	n, err := c.w.Write(b)
	c.sent += int64(n)
	return n, err
}

// Flush forwards flushes so streamed bytes reach the client before a cut.
func (c *cutWriter) Flush() {
	if f, ok := c.w.(http.Flusher); ok && !c.cut {
		f.Flush()
	}
}

func (c *cutWriter) doCut() {
	c.cut = true
	c.onCut()
	if f, ok := c.w.(http.Flusher); ok && c.header {
		f.Flush()
	}
	conn, buf, err := http.NewResponseController(c.w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): make the server abort the response instead.
		panic(http.ErrAbortHandler)
	}
	if buf != nil {
		flushBuf(buf)
	}
	if tc, ok := conn.(*net.TCPConn); ok && c.reset {
		_ = tc.SetLinger(0) // close with RST
	}
	_ = conn.Close()
}

func flushBuf(b *bufio.ReadWriter) { _ = b.Flush() }
