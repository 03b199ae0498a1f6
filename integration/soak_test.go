package integration

// The soak test: many readers and writers for a while, with a cache much smaller than the
// data, every byte checked; then the daemon's resources are measured at rest.

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/plxfs/plxfs/internal/emulator"
	"github.com/plxfs/plxfs/internal/faultproxy"
)

var soakDuration = flag.Duration("soak-duration", 0, "how long TestSoak runs its load (default 45s, or $PLXFS_SOAK)")

// soakLength is -soak-duration, else $PLXFS_SOAK (a Go duration), else 45s.
func soakLength(t *testing.T) time.Duration {
	if *soakDuration > 0 {
		return *soakDuration
	}
	if s := os.Getenv("PLXFS_SOAK"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("PLXFS_SOAK=%q: %v (want a duration such as 10m)", s, err)
		}
		return d
	}
	return 45 * time.Second
}

// TestSoak runs 64 readers and 8 writers against a mount of a few hundred objects for
// soakLength, with a cache a fifth of the data (eviction never stops) and 1% of the requests
// failing. Every read is checked against the object's bytes, every write against the bucket
// and a read back. At the end the daemon's threads, goroutines, open files and cache size are
// measured at rest and compared with an idle daemon's.
func TestSoak(t *testing.T) {
	length := soakLength(t)
	p := faultproxy.New(31)
	srv := startEmulator(t, emulator.Options{Buckets: []string{relBucket}, Handler: p.Middleware})
	const objects = 300
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([][]byte, objects)
	var total int64
	for i := range data {
		n := 4<<10 + rng.IntN(700<<10)
		if i%50 == 0 {
			n = 3<<20 + rng.IntN(1<<20) // a few multi-chunk objects
		}
		data[i] = randData(uint64(10_000+i), n)
		total += int64(n)
		if err := srv.PutObject(relBucket, fmt.Sprintf("pre/data/%03d/obj%03d.bin", i%10, i), data[i], ""); err != nil {
			t.Fatal(err)
		}
	}
	const cacheSize = 24 << 20
	conf := relConns(t)
	flags := []string{"--chunk-size", "1MiB", "--cache-size", "24MiB", "--readahead", "2", "--ttl", "2s",
		"--upload-chunk-size", "256KiB", "--compose-threshold", "2MiB", "--part-size", "1MiB"}

	// The idle reference: a daemon that mounted and served a few reads, then nothing.
	idle := startRelMount(t, mountOpts{endpoint: srv.URL(), config: conf, flags: flags})
	for i := range 5 {
		if err := readVerified(idle.path("ds", objPath(i)), data[i]); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Second)
	idleThreads, idleFDs, _ := procCounts(idle.pid())
	idleFDMap := fdTargets(idle.pid(), idle.cacheDir)
	idleG := goroutineDump(t, idle)

	d := startRelMount(t, mountOpts{endpoint: srv.URL(), config: conf, flags: flags})
	if err := os.Mkdir(d.path("ds", "out"), 0o755); err != nil {
		t.Fatal(err)
	}
	p.SetRules(faultproxy.Rule{Name: "1% 503", Status: 503, Prob: 0.005}, faultproxy.Rule{Name: "1% reset", Method: "GET", Action: faultproxy.Reset, After: 20_000, Prob: 0.005})
	startThreads, startFDs, _ := procCounts(d.pid())

	var (
		reads, writes tally
		readBytes     atomic.Int64
		peakThreads   atomic.Int64
		peakFDs       atomic.Int64
		peakCache     atomic.Int64
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	for r := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 99))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(objects)
				var err error
				if rng.IntN(3) == 0 {
					err = randomPreads(d.path("ds", objPath(i)), data[i], rng, 3)
				} else {
					err = readVerified(d.path("ds", objPath(i)), data[i])
				}
				switch {
				case err == nil:
					reads.add("verified")
					readBytes.Add(int64(len(data[i])))
				case isWrong(err):
					reads.bad("%v", err)
				case errnoOf(err) == syscall.EIO:
					reads.add("EIO")
				default:
					reads.bad("%s: %v", objPath(i), err)
				}
			}
		}()
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 77))
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				// Each writer cycles over 5 names: creates, then overwrites, then deletes some.
				name := fmt.Sprintf("out/w%d-%d.bin", w, k%5)
				if k%7 == 6 {
					switch err := os.Remove(d.path("ds", name)); {
					case err == nil || os.IsNotExist(err):
						writes.add("unlinked")
					case errnoOf(err) == syscall.EIO:
						writes.add("unlink refused (EIO)")
					default:
						writes.bad("unlink %s: %v", name, err)
					}
					continue
				}
				n := rng.IntN(600 << 10)
				if k%11 == 3 {
					n = 2<<20 + rng.IntN(1<<20) // composed
				}
				content := randData(uint64(w<<32|k), n)
				err := writeThroughMount(d.path("ds", name), content, k%2 == 0)
				switch {
				case err == nil:
					obj, gerr := srv.GetObject(relBucket, "pre/"+name)
					if gerr != nil || !bytes.Equal(obj.Content, content) {
						writes.bad("%s: close succeeded but the bucket holds %d bytes (%v), want %d", name, len(obj.Content), gerr, n)
						continue
					}
					if rerr := readVerified(d.path("ds", name), content); rerr != nil && errnoOf(rerr) != syscall.EIO {
						writes.bad("%s: read back: %v", name, rerr)
						continue
					}
					writes.add("landed and verified")
				case errnoOf(err) == syscall.EIO:
					writes.add("refused (EIO)")
					// Whatever the bucket holds is whole: the new bytes or nothing/old ones.
					if obj, gerr := srv.GetObject(relBucket, "pre/"+name); gerr == nil && len(obj.Content) == n && !bytes.Equal(obj.Content, content) {
						writes.bad("%s: refused upload left a mixed object", name)
					}
				default:
					writes.bad("%s: %v", name, err)
				}
			}
		}()
	}
	// Sample the daemon while the load runs.
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			th, fds, err := procCounts(d.pid())
			if err != nil {
				continue
			}
			storeMax(&peakThreads, int64(th))
			storeMax(&peakFDs, int64(fds))
			c, _ := dirBytes(d.cacheDir + "/chunks")
			storeMax(&peakCache, c)
		}
	}()
	time.Sleep(length)
	close(stop)
	wg.Wait()
	<-samplerDone
	p.Clear()
	st := p.Stats()

	// At rest: give background fetches and idle timers a moment, then measure.
	time.Sleep(2 * time.Second)
	endThreads, endFDs, err := procCounts(d.pid())
	if err != nil {
		t.Fatal(err)
	}
	cacheBytes, cacheFiles := dirBytes(d.cacheDir + "/chunks")
	_, stagingFiles := dirBytes(d.cacheDir + "/staging")
	fds := fdTargets(d.pid(), d.cacheDir)
	parts, _ := srv.ObjectNames(relBucket, "pre/.plxfs-tmp/")
	endG := goroutineDump(t, d)

	t.Logf("soak: %v of load over %d objects (%d MiB; cache %d MiB); faults injected %d of %d requests %v",
		length, objects, total>>20, cacheSize>>20, st.Faults, st.Requests, st.ByRule)
	t.Logf("soak reads: %v (%d MiB verified); writes: %v", reads.String(), readBytes.Load()>>20, writes.String())
	t.Logf("soak daemon: threads idle-reference %d, start %d, peak %d, end %d; fds idle-reference %d, start %d, peak %d, end %d",
		idleThreads, startThreads, peakThreads.Load(), endThreads, idleFDs, startFDs, peakFDs.Load(), endFDs)
	t.Logf("soak daemon: goroutines idle-reference %d, end %d (%d beside two per pooled connection, idle reference %d); plxfs goroutines idle-reference %d, end %d",
		idleG.total, endG.total, endG.total-2*fds["socket"], idleG.total-2*idleFDMap["socket"], idleG.plxfs, endG.plxfs)
	t.Logf("soak cache: %d bytes in %d chunk files at the end (peak %d, bound %d); staging files %d",
		cacheBytes, cacheFiles, peakCache.Load(), cacheSize, stagingFiles)
	t.Logf("soak fds of the idle reference: %v; at the end: %v", idleFDMap, fds)

	reads.failIfBad(t, "soak reads")
	writes.failIfBad(t, "soak writes")
	if reads.get("verified") == 0 || writes.get("landed and verified") == 0 {
		t.Fatalf("the soak verified nothing: reads %v, writes %v", reads.String(), writes.String())
	}
	// Bounds. The chunk files' headers and the chunks being filled may exceed the bound by a
	// little; the cache must not grow with the load.
	if slack := int64(cacheSize / 4); cacheBytes > cacheSize+slack || peakCache.Load() > cacheSize+slack {
		t.Errorf("cache dir holds %d bytes at the end (peak %d), bound %d (+%d slack)", cacheBytes, peakCache.Load(), cacheSize, slack)
	}
	if len(parts) != 0 {
		t.Errorf("temporary upload parts left in the bucket after the load: %q", parts)
	}
	if stagingFiles != 0 {
		t.Errorf("%d staging files left in %s/staging with no write open", stagingFiles, d.cacheDir)
	}
	// At rest the daemon holds what an idle daemon holds, plus pooled idle HTTP connections:
	// one socket and two goroutines (read and write loops) each, at most 100 per host (the
	// Google client's pool). Everything else must be back to the idle reference, give or take
	// go-fuse's pool of splice pipes.
	idleSockets, endSockets := idleFDMap["socket"], fds["socket"]
	if endSockets > 110 {
		t.Errorf("%d sockets open at rest: more than the HTTP client's idle pool (100)", endSockets)
	}
	if other, idleOther := endFDs-endSockets, idleFDs-idleSockets; other > idleOther+16 {
		t.Errorf("open file descriptors other than sockets at rest: %d, an idle daemon has %d: a leak (%v)", other, idleOther, fds)
	}
	if g, idle := endG.total-2*endSockets, idleG.total-2*idleSockets; g > idle+10 {
		t.Errorf("goroutines at rest beside the HTTP connections' own: %d, an idle daemon has %d: a leak\n%s", g, idle, endG.top)
	}
	if endG.plxfs > idleG.plxfs+4 {
		t.Errorf("goroutines in plxfs code at rest: %d, an idle daemon has %d: a leak\n%s", endG.plxfs, idleG.plxfs, endG.top)
	}
}

func objPath(i int) string { return fmt.Sprintf("data/%03d/obj%03d.bin", i%10, i) }

func storeMax(v *atomic.Int64, n int64) {
	for {
		old := v.Load()
		if n <= old || v.CompareAndSwap(old, n) {
			return
		}
	}
}

// fdTargets summarises what the process's descriptors point at (socket, pipe, /dev/fuse,
// files under the cache...).
func fdTargets(pid int, cacheDir string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	for _, e := range ents {
		target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		if i := strings.Index(target, ":["); i > 0 {
			target = target[:i]
		} else if rel, ok := strings.CutPrefix(target, cacheDir+"/"); ok {
			target = "cache:" + regexp.MustCompile(`[0-9a-f]{64}.*`).ReplaceAllString(rel, "<chunk>")
		} else if strings.HasPrefix(target, "/") && target != "/dev/fuse" && target != "/dev/null" {
			target = "other file"
		}
		out[target]++
	}
	return out
}

// goroutines summarises a goroutine dump.
type goroutines struct {
	total int
	plxfs int    // goroutines with a plxfs frame other than main's own waits
	top   string // most common plxfs functions
}

var goroutineHeader = regexp.MustCompile(`(?m)^goroutine \d+ [^\n]*\[[^\n]*\]:$`)

// goroutineDump stops the daemon with SIGQUIT (GOTRACEBACK=all: every goroutine's stack is
// printed, the mount is left behind) and counts its goroutines. The daemon has no debug
// endpoint; this is the only way to see them from outside.
func goroutineDump(t *testing.T, d *relDaemon) goroutines {
	t.Helper()
	d.signal(syscall.SIGQUIT)
	select {
	case <-d.exitedCh():
	case <-time.After(30 * time.Second):
		t.Fatal("the daemon did not exit after SIGQUIT")
	}
	detachMount(d.mnt)
	log := d.lastRunLog()
	i := goroutineHeader.FindStringIndex(log)
	if i == nil {
		t.Fatalf("no goroutine dump in the daemon's output:\n%s", tailBytes([]byte(log), 4096))
	}
	var g goroutines
	counts := map[string]int{}
	for _, stack := range strings.Split(log[i[0]:], "\n\n") {
		if !goroutineHeader.MatchString(stack) {
			continue
		}
		g.total++
		for _, line := range strings.Split(stack, "\n") {
			if strings.HasPrefix(line, "github.com/plxfs/plxfs/") && !strings.HasPrefix(line, "github.com/plxfs/plxfs/cmd/") {
				g.plxfs++
				counts[line[:strings.IndexByte(line+"(", '(')]]++
				break
			}
		}
	}
	type kv struct {
		k string
		v int
	}
	var kvs []kv
	for k, v := range counts {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(a, b int) bool { return kvs[a].v > kvs[b].v })
	var b strings.Builder
	for _, e := range kvs[:min(len(kvs), 10)] {
		fmt.Fprintf(&b, "  %4d %s\n", e.v, e.k)
	}
	g.top = b.String()
	return g
}
