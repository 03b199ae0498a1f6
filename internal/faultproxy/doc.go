// Package faultproxy is an http.Handler middleware for tests that injects the failures a GCS
// client meets in the wild: throttling and server errors (429, 500, 503), connections reset in
// the middle of a response body, bodies cut short of their Content-Length, stalls, and bodies
// with one byte flipped. It plugs
// into internal/emulator through Options.Handler:
//
//	p := faultproxy.New(1)
//	em, _ := emulator.Start(emulator.Options{Handler: p.Middleware})
//	p.SetRules(faultproxy.Rule{Name: "503 x2", Method: "GET", Match: []string{"/bkt/obj"},
//		Action: faultproxy.Status, Status: 503, First: 2})
//
// # Rules
//
// A Rule matches a request by method and by substrings of its request URI (path and query, as
// sent, e.g. "uploadType=resumable", "/upload/", "upload_id="). Rules are tried in order; the
// first rule that matches and is due applies, and only one fault is injected per request. A
// matching rule is due unless it skips its first Skip matches, has already fired First times,
// or loses its Prob draw. Draws come from one RNG seeded by New, so a single-goroutine test
// injects the same faults on every run.
//
// Status faults answer without calling the next handler, so the emulator never sees the
// request. Reset and Truncate faults call the next handler and cut its response after After
// body bytes (After 0 with Reset: before any header, i.e. a response lost after the server
// acted on the request). Stall waits, honouring the request context, then forwards (with
// After > 0: forwards at once and pauses the response body after After bytes). Flip
// forwards and flips one byte of the response body (at After, or at a random offset when
// After < 0), keeping the status, headers and length: corruption only a checksum catches.
//
// # Counting
//
// Stats reports requests seen, faults injected, and faults per rule name.
//
// # Locking
//
// Proxy.mu guards the rules, their counters, the RNG and the stats. It is never held while a
// request is forwarded or stalled.
package faultproxy
