# plxfs — build, test, benchmark. `make help` lists the targets.
GO       ?= go
BIN      ?= bin/plxfs
# VERSION is stamped into the binary; empty (no git), plxfs reports the VCS revision or "devel".
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null)
LDFLAGS  := -s -w -X main.version=$(VERSION)
# MOUNTPOINT for `make demo`.
MNT      ?= /tmp/plxfs-demo

.PHONY: help build test vet check-imports bench bench-quick demo fuzz docker clean

help: ## show this help
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

build: ## build bin/plxfs (static)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/plxfs

vet: check-imports ## gofmt, go vet and the import-direction check
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$bad" ]; then echo "gofmt -w these files:"; echo "$$bad"; exit 1; fi
	$(GO) vet ./...

# Only store/gcs (and test/demo helpers under internal/) may import the GCS SDK.
check-imports:
	@bad=$$($(GO) list -deps ./fs/... ./cache/... ./connspec/... ./creds/... ./transfer/... 2>/dev/null | grep -x 'cloud.google.com/go/storage' || true); \
	if [ -n "$$bad" ]; then echo "fs, cache, connspec, creds and transfer must not import cloud.google.com/go/storage"; exit 1; fi

# The race detector instruments the packages' own tests, which mount the filesystem in-process
# (fs) and run every store, cache and transfer path. integration/ runs the built binary in its own
# processes against an emulator inside the test process; instrumenting that emulator costs
# minutes and checks nothing of ours, so that package runs without -race.
test: vet ## all tests (real FUSE mounts against fake-gcs-server), with the race detector
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /integration)
	$(GO) test -count=1 -timeout 20m ./integration/

fuzz: ## run each fuzz target for a few seconds (100,000 inputs each)
	./.ci/fuzz 100000x

# The mount benchmarks (integration/mount_bench_test.go) build fake-gcs-server and run it as its
# own process. The read benchmark runs once for each link profile of PLXFS_BENCH_PROFILES
# (default loopback,region,slow): loopback talks to the emulator directly; region (20 ms to the
# first byte, +40 ms a new connection, 50 MiB/s a connection, 400 MiB/s in all) and slow (60 ms,
# +120 ms, 25 MiB/s, 200 MiB/s) put internal/shapeproxy, as its own process, in front of it for
# the daemon and the direct baselines alike. PLXFS_BENCH_RUNS, PLXFS_BENCH_MIB, PLXFS_BENCH_FILES
# and PLXFS_BENCH_ENTRIES shrink them; PLXFS_BENCH_PPROF=DIR saves CPU profiles of the daemon there.
bench: ## benchmarks: ratios to the direct GCS client, measured in the same run
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 150m ./integration/ ./transfer/ ./cache/

bench-quick: ## the mount benchmarks, one run at small sizes, reads on the region link only (while developing)
	PLXFS_BENCH_RUNS=1 PLXFS_BENCH_MIB=128 PLXFS_BENCH_FILES=200 PLXFS_BENCH_ENTRIES=1000 PLXFS_BENCH_PROFILES=region \
		$(GO) test -run '^$$' -bench Mount -benchtime 1x -timeout 20m ./integration/

demo: build ## mount a generated demo dataset from an embedded emulator at $(MNT) (Ctrl-C to stop)
	$(BIN) demo $(MNT)

docker: ## build the container image
	docker build --build-arg VERSION=$(VERSION) -t plxfs:$(or $(VERSION),latest) .

clean:
	rm -rf bin
