//go:build race

package integration

// raceEnabled: the race detector multiplies memory by several times, so the 1 GiB transfers of
// the mount tests shrink under it (the full size runs in the plain `go test` run).
const raceEnabled = true
