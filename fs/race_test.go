//go:build race

package fs

// raceEnabled: the race detector multiplies memory several times, so the biggest objects of
// these tests shrink under it (the full sizes run in the plain `go test` run).
const raceEnabled = true
