package cache

import "fmt"

// WithRandomPolicy returns opts set to serve non-sequential reads of cold chunks with the named
// policy ("adaptive", "chunk" or "block") and block size (0: the default), for benchmarks in
// package cache_test.
func WithRandomPolicy(opts Options, policy string, blockSize int64) Options {
	switch policy {
	case "adaptive":
		opts.randomPolicy = policyAdaptive
	case "chunk":
		opts.randomPolicy = policyChunk
	case "block":
		opts.randomPolicy = policyBlock
	default:
		panic(fmt.Sprintf("unknown random policy %q", policy))
	}
	opts.blockSize = blockSize
	return opts
}
