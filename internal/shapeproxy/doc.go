// Package shapeproxy is a TCP proxy for benchmarks that gives a loopback connection the shape
// of a network link to a cloud store: a delay before each request reaches the server, a cost
// for each new connection, and bandwidth caps per connection and for all connections together.
// It knows nothing of HTTP; put it between a client and fake-gcs-server (internal/faultproxy
// injects failures, this package only shapes):
//
//	p, _ := shapeproxy.Listen("127.0.0.1:0", emulatorHostPort, shapeproxy.Region)
//	defer p.Close()
//	// point the client at "http://" + p.Addr()
//
// # The model
//
// Client to server, every byte is held Latency after the proxy read it (a delay line: a segment
// waits for its own due time only, so pipelined requests are not queued behind each other's
// delay). A connection's first byte also waits until ConnectCost after the connection was
// accepted (the TCP and TLS handshakes of a new connection). Server to client, bytes pass in
// turns of 256 KiB, each at the end of the time it takes on its connection at PerConn bytes/s
// (a pacer that keeps no credit while the connection is idle, as a warm TCP connection does
// not: a short response after a pause still takes its size ÷ PerConn) and once a token bucket
// of Total bytes/s shared by all allows it (golang.org/x/time/rate; reservations are granted
// in the order they are asked for, so connections that are all backlogged share Total evenly).
// UpPerConn and UpTotal cap the client-to-server direction the same way. A request's first byte therefore arrives
// Latency (plus ConnectCost on a new connection) after it was sent, and a response streams at
// most at PerConn: the shape of GCS seen from a VM (tens of milliseconds to the first byte, a
// fraction of the VM's bandwidth per stream).
//
// # Cost
//
// The proxy copies with 256 KiB buffers (64 KiB client to server) and does no per-byte work:
// one read and one write per buffer, one token reservation and at most one timer per 256 KiB
// turn. Its cost is the kernel's two socket copies plus its wake-ups: on a loaded 2-core VM
// about 0.5 CPU s per GiB unshaped and 0.8–1.4 shaped (measured with 1 MiB turns, which kept a
// turn of credit while idle; 256 KiB turns cost a little more in wake-ups).
// Half-closes pass through (an EOF from one side becomes a CloseWrite on the other, after the delayed
// bytes); an error on either side closes both, with a reset towards the side still open.
//
// cmd/shapeproxy runs a proxy as its own process, so that a benchmark can count its CPU apart
// from the client's.
package shapeproxy
