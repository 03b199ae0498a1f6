// Command shapeproxy runs a shapeproxy.Proxy as its own process, so that a benchmark can count
// the proxy's CPU apart from its own (integration/mount_bench_test.go starts it in front of
// fake-gcs-server):
//
//	shapeproxy -listen 127.0.0.1:9001 -target 127.0.0.1:4443 -profile region
//
// It logs its address when it listens and what it carried when SIGINT or SIGTERM stops it.
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/plxfs/plxfs/internal/shapeproxy"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "`host:port` to listen on")
	target := flag.String("target", "", "`host:port` of the server to forward to (required)")
	profile := flag.String("profile", shapeproxy.Region.Name, "link `profile`: loopback (no shaping, to measure the proxy itself), region or slow")
	flag.Parse()
	if *target == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "shapeproxy: -target host:port is required (the server to forward to), and nothing else after the flags")
		os.Exit(2)
	}
	link, err := shapeproxy.Profile(*profile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "shapeproxy: -profile: %v\n", err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	p, err := shapeproxy.Listen(*listen, *target, link)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	log.Info("listening", "addr", p.Addr(), "target", *target, "link", link.String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	p.Close()
	st := p.Stats()
	log.Info("stopped", "conns", st.Conns, "dial_errors", st.DialErrors, "down_bytes", st.Down, "up_bytes", st.Up)
}
