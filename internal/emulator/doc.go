// Package emulator runs fake-gcs-server (github.com/fsouza/fake-gcs-server, v1.56.1) in-process
// behind plxfs's own net/http server on 127.0.0.1:0, so that the same process (tests) or a
// separate process (the built plxfs binary, `plxfs demo`) can reach it over real TCP.
//
// It does not import "testing": the demo command embeds it in the binary.
//
// # Why our own listener
//
// fakestorage can start its own httptest listener, but its public host (which decides whether
// XML-API reads `/<bucket>/<object>` are served) and its external URL (returned in the Location
// header of resumable uploads) must name the real address, which is only known after listening.
// Start therefore listens first, then builds the fake with NoListener, PublicHost = "127.0.0.1:PORT"
// and ExternalURL = "http://127.0.0.1:PORT", and serves fakestorage's HTTPHandler itself. That also
// gives one place to count requests (Requests) and to insert middleware (Options.Handler, e.g. an
// internal/faultproxy.Proxy).
//
// # Request counting
//
// Requests counts what reached the emulator, after Options.Handler: a request that a fault
// middleware answered by itself (a 503, say) is not counted here; the middleware counts those.
// A request the middleware forwarded and then cut short (a reset, a truncated body) is counted.
//
// # Backends
//
// "memory" (the default) keeps everything in RAM; its lookups scan the bucket linearly, so keep
// it to buckets of a few thousand objects. "filesystem" stores objects as files under Root:
// constant-time GETs, but an object "a" and an object "a/b" cannot both exist (one is a file, the
// other needs a directory of the same name), and directory placeholders ("d/") are not kept as
// objects. Use the memory backend for tests about objects shadowed by prefixes.
//
// # Locking
//
// Server.mu guards the counters only; it is never held while calling into fakestorage.
package emulator
