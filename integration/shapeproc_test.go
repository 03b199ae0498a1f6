package integration

import (
	"fmt"
	"net"
	"os/exec"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/shapeproxy"
)

// shapeProc is internal/shapeproxy's command running as its own process in front of a gcsProc,
// so that the benchmarks count its CPU apart from theirs and from the daemon's.
type shapeProc struct {
	link   shapeproxy.Link
	host   string // "127.0.0.1:PORT"
	cmd    *exec.Cmd
	logs   *lockedBuffer
	exited chan struct{}
}

// startShapeProc starts a proxy with link in front of g; it is stopped when tb ends if stop
// was not called first.
func startShapeProc(tb testing.TB, g *gcsProc, link shapeproxy.Link) *shapeProc {
	tb.Helper()
	bin, err := toolBinary("github.com/plxfs/plxfs/internal/shapeproxy/cmd/shapeproxy")
	if err != nil {
		tb.Fatal(err)
	}
	port, err := freePort()
	if err != nil {
		tb.Fatal(err)
	}
	s := &shapeProc{link: link, host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), logs: &lockedBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, "-listen", s.host, "-target", g.host, "-profile", link.Name)
	s.cmd.SysProcAttr = dieWithTest()
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	tb.Cleanup(func() { s.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", s.host)
		if err == nil {
			c.Close()
			return s
		}
		select {
		case <-s.exited:
			tb.Fatalf("shapeproxy exited early:\n%s", s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("shapeproxy not answering after 30s: %v\n%s", err, s.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Pid is the proxy's process id.
func (s *shapeProc) Pid() int { return s.cmd.Process.Pid }

var downBytesRE = regexp.MustCompile(`down_bytes=(\d+)`)

// stop ends the proxy and returns the CPU seconds it spent in all and the bytes it carried from
// the server (-1 when it did not say).
func (s *shapeProc) stop() (cpu float64, down int64) {
	select {
	case <-s.exited:
		return 0, -1
	default:
	}
	cpu = cpuSeconds(s.Pid())
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
	down = -1
	if m := downBytesRE.FindStringSubmatch(s.logs.String()); m != nil {
		down, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return cpu, down
}

// through is g seen through the proxy s: requests go to the proxy, with a client of their own
// (no connection kept from the direct view); Pid is still the emulator's.
func (g *gcsProc) through(s *shapeProc) *gcsProc {
	v := *g
	v.host, v.client, v.proxy = s.host, directClient(), s
	return &v
}

// proxyCPU is the CPU seconds of g's proxy so far (-1 without one).
func (g *gcsProc) proxyCPU() float64 {
	if g.proxy == nil {
		return -1
	}
	return cpuSeconds(g.proxy.Pid())
}

// proxyCost describes the proxy's cost, for the benchmark's output.
func proxyCost(link shapeproxy.Link, cpu float64, down int64) string {
	if down <= 0 {
		return fmt.Sprintf("shapeproxy (%s): %.2f CPU s", link.Name, cpu)
	}
	return fmt.Sprintf("shapeproxy (%s): %.2f CPU s for %.2f GiB carried to the clients: %.2f CPU s per GiB", link.Name, cpu, float64(down)/(1<<30), cpu*(1<<30)/float64(down))
}
