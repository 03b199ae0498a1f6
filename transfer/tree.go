package transfer

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// statFirstSize: uploads of files at least this big check for an existing object before
// sending any bytes; smaller ones just try (a refused small upload costs about what a Stat does).
const statFirstSize = 1 << 20

// dirPrefix is the listing prefix of a directory path: "" for the root, else "dir/".
func dirPrefix(dir string) string {
	dir = strings.Trim(dir, "/")
	if dir == "" {
		return ""
	}
	return dir + "/"
}

// joinName joins a directory path and a relative name into an object name.
func joinName(dir, rel string) string { return dirPrefix(dir) + rel }

// isTemp reports whether a name relative to the bucket view is under TempDir.
func isTemp(rel string) bool { return rel == TempDir || strings.HasPrefix(rel, TempDir+"/") }

// List returns what is under the directory dir ("" for the root), as Polyaxon's ls does:
// dirs are sub-directory names and files the objects, both relative to dir (files[i].Name is
// relative too) and sorted. The placeholder object "dir/" itself is left out, and only names
// strictly under "dir/" are considered, so "dir2/x" and "dir.csv" never show. With recursive,
// every object below dir is in files and every directory below it (from names and from
// placeholder objects) in dirs. TempDir is hidden at the root.
func List(ctx context.Context, b store.Bucket, dir string, recursive bool) (dirs []string, files []store.Attrs, err error) {
	prefix := dirPrefix(dir)
	if !recursive {
		tok := ""
		for {
			p, err := b.List(ctx, store.ListOptions{Prefix: prefix, Delimiter: "/", PageToken: tok})
			if err != nil {
				return nil, nil, fmt.Errorf("list %q: %w", prefix, err)
			}
			for _, d := range p.Prefixes {
				rel := strings.TrimSuffix(d[len(prefix):], "/")
				if prefix == "" && rel == TempDir {
					continue
				}
				dirs = append(dirs, rel)
			}
			for _, a := range p.Objects {
				if a.Name == prefix {
					continue
				}
				a.Name = a.Name[len(prefix):]
				files = append(files, a)
			}
			if p.NextPageToken == "" {
				break
			}
			tok = p.NextPageToken
		}
		slices.Sort(dirs)
		return dirs, files, nil
	}
	seen := map[string]bool{}
	addDir := func(d string) {
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	err = walk(ctx, b, prefix, func(a store.Attrs) error {
		rel := a.Name[len(prefix):]
		if rel == "" || prefix == "" && isTemp(rel) {
			return nil
		}
		for i := 0; i < len(rel)-1; i++ {
			if rel[i] == '/' {
				addDir(rel[:i])
			}
		}
		if strings.HasSuffix(rel, "/") {
			addDir(strings.TrimSuffix(rel, "/"))
			return nil
		}
		a.Name = rel
		files = append(files, a)
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	slices.Sort(dirs)
	return dirs, files, nil
}

// tally accumulates a Summary from per-file events, safe for concurrent use.
type tally struct {
	start time.Time
	p     Progress

	mu sync.Mutex
	s  Summary // guarded by mu
}

func newTally(p Progress) *tally { return &tally{start: time.Now(), p: p} }

func (t *tally) done(ev Event) {
	t.mu.Lock()
	switch {
	case ev.Err != nil:
		t.s.Failed++
		t.s.Failures = append(t.s.Failures, Failure{Name: ev.Name, Err: ev.Err})
	case ev.Skipped:
		t.s.Skipped++
	default:
		t.s.Files++
		t.s.Bytes += ev.Size
	}
	t.mu.Unlock()
	t.p.Done(ev)
}

// forEach runs do(ctx, i) for i in [0, n) with at most workers at once, reporting each outcome
// to t; once ctx ends (or is cancelled) no new item starts.
func (t *tally) forEach(ctx context.Context, workers, n int, do func(ctx context.Context, i int) Event) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			t.done(do(gctx, i))
			return nil
		})
	}
	_ = g.Wait()
}

func (t *tally) summary() Summary {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	s.Failures = slices.Clone(s.Failures)
	slices.SortFunc(s.Failures, func(a, b Failure) int { return strings.Compare(a.Name, b.Name) })
	s.Elapsed = time.Since(t.start)
	return s
}

// excluded reports whether a relative slash path matches one of the globs, by its whole
// path or by its base name.
func excluded(rel string, globs []string) bool {
	base := path.Base(rel)
	for _, g := range globs {
		if ok, _ := path.Match(g, rel); ok {
			return true
		}
		if ok, _ := path.Match(g, base); ok {
			return true
		}
	}
	return false
}

// excludedTree reports whether rel or one of its ancestor directories is excluded, which is
// what UploadTree's walk does by skipping excluded directories.
func excludedTree(rel string, globs []string) bool {
	if len(globs) == 0 {
		return false
	}
	for i := 0; i < len(rel); i++ {
		if rel[i] == '/' && excluded(rel[:i], globs) {
			return true
		}
	}
	return excluded(rel, globs)
}

// CheckGlobs reports the first malformed glob in globs.
func CheckGlobs(globs []string) error {
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return fmt.Errorf("exclude glob %q: %w", g, err)
		}
	}
	return nil
}

// --- downloads -----------------------------------------------------------------------------

// DownloadTree copies every object strictly under remoteDir + "/" ("" for the whole bucket
// view, TempDir excepted) into localRoot, keeping the relative layout; directory placeholder
// objects become (possibly empty) directories.
//
// Objects are refused, and listed as failures, when their name is unsafe as a local path
// (connspec.NameToPath: "..", ".", empty segments, absolute, NUL, segments over 255 bytes) or
// clashes locally (object "a" next to objects under "a/": the directory wins). Every file
// operation goes through os.Root, so nothing is written outside localRoot even through a
// symlink. An existing local file identical to the object (size and CRC32C, or MD5) is
// skipped, so re-running resumes; a different one is a failure unless opts.SkipUnchanged or
// opts.Force replaces it. Filters: opts.Exclude, opts.Since (object Updated time).
//
// The error is non-nil only when the operation as a whole failed (listing, the local root,
// cancellation); per-object failures are in the Summary.
func DownloadTree(ctx context.Context, b store.Bucket, remoteDir, localRoot string, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	t := newTally(opts.Progress)
	prefix := dirPrefix(remoteDir)
	var objs []store.Attrs
	if err := walk(ctx, b, prefix, func(a store.Attrs) error {
		rel := a.Name[len(prefix):]
		if rel != "" && !(prefix == "" && isTemp(rel)) {
			objs = append(objs, a)
		}
		return nil
	}); err != nil {
		return t.summary(), err
	}
	// Every directory implied by a name, to detect object "a" next to prefix "a/".
	dirSet := map[string]bool{}
	for _, a := range objs {
		rel := a.Name[len(prefix):]
		for i := 0; i < len(rel); i++ {
			if rel[i] == '/' {
				dirSet[rel[:i]] = true
			}
		}
	}
	type item struct {
		a    store.Attrs
		path string // local, relative to localRoot
	}
	var items, dirs []item
	var refused []Event
	var total int64
	for _, a := range objs {
		rel := a.Name[len(prefix):]
		if excludedTree(strings.TrimSuffix(rel, "/"), opts.Exclude) || !opts.Since.IsZero() && !a.Updated.After(opts.Since) {
			continue
		}
		p, err := connspec.NameToPath(rel)
		switch {
		case err != nil:
			refused = append(refused, Event{Name: a.Name, Size: a.Size, Err: fmt.Errorf("refused: %w", err)})
		case strings.HasSuffix(rel, "/"):
			dirs = append(dirs, item{a, p})
		case dirSet[rel]:
			refused = append(refused, Event{Name: a.Name, Size: a.Size, Err: fmt.Errorf("refused: object %q clashes locally with the directory %q (objects under %q exist); the directory is kept", a.Name, rel+"/", a.Name+"/")})
		default:
			items = append(items, item{a, p})
			total += a.Size
		}
	}
	if opts.Confirm != nil && !opts.Confirm(int64(len(items)), total) {
		return t.summary(), ErrAborted
	}
	opts.Progress.Total(int64(len(items)), total)
	for _, ev := range refused {
		t.done(ev)
	}
	if len(items)+len(dirs) == 0 { // nothing to write: do not even create localRoot
		return t.summary(), nil
	}
	if err := os.MkdirAll(localRoot, 0o777); err != nil {
		return t.summary(), fmt.Errorf("download: %w", err)
	}
	root, err := os.OpenRoot(localRoot)
	if err != nil {
		return t.summary(), fmt.Errorf("download: %w", err)
	}
	defer root.Close()
	if !opts.DryRun {
		for _, d := range dirs {
			if err := root.MkdirAll(d.path, 0o777); err != nil {
				t.done(Event{Name: d.a.Name, Err: fmt.Errorf("create directory: %w", err)})
			}
		}
	}
	t.forEach(ctx, opts.Workers, len(items), func(ctx context.Context, i int) Event {
		return downloadOne(ctx, b, items[i].a, root, items[i].path, opts)
	})
	return t.summary(), ctx.Err()
}

// DownloadFile downloads the object name to the local file dest with DownloadTree's rules
// for an existing dest (identical: skipped; different: a failure unless SkipUnchanged or
// Force). dest is the caller's choice and is not checked as an object name would be.
func DownloadFile(ctx context.Context, b store.Bucket, name, dest string, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	t := newTally(opts.Progress)
	a, err := b.Stat(ctx, name)
	if err != nil {
		return t.summary(), fmt.Errorf("download %q: %w", name, err)
	}
	opts.Progress.Total(1, a.Size)
	dir, base := filepath.Split(filepath.Clean(dest))
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return t.summary(), fmt.Errorf("download %q: %w", name, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return t.summary(), fmt.Errorf("download %q: %w", name, err)
	}
	defer root.Close()
	t.done(downloadOne(ctx, b, a, root, base, opts))
	return t.summary(), ctx.Err()
}

// downloadOne applies the existing-file policy, then downloads a into root/rel.
func downloadOne(ctx context.Context, b store.Bucket, a store.Attrs, root *os.Root, rel string, opts Options) Event {
	ev := Event{Name: a.Name, Size: a.Size}
	if !opts.Force {
		st, err := root.Stat(rel)
		switch {
		case err == nil:
			if !st.Mode().IsRegular() {
				ev.Err = fmt.Errorf("local %s exists and is not a regular file", rel)
				return ev
			}
			same, err := localSame(root, rel, st, a, opts)
			if err != nil {
				ev.Err = fmt.Errorf("compare with local %s: %w", rel, err)
				return ev
			}
			if same {
				ev.Skipped = true
				return ev
			}
			if !opts.SkipUnchanged {
				ev.Err = fmt.Errorf("local file %s exists and differs (use --skip-unchanged or --force to replace it)", rel)
				return ev
			}
		case !errors.Is(err, fs.ErrNotExist):
			ev.Err = err
			return ev
		}
	}
	if opts.DryRun {
		ev.DryRun = true
		return ev
	}
	ev.Err = downloadTo(ctx, b, a, root, rel, opts)
	return ev
}

// localSame reports whether the local file holds the object's content: same size and
// CRC32C (or MD5). A gzip object that downloads decompress cannot be compared by content;
// it counts as the same when the local modification time is the one a download gives it.
func localSame(root *os.Root, rel string, st fs.FileInfo, a store.Attrs, opts Options) (bool, error) {
	if a.ContentEncoding == "gzip" && !opts.Raw {
		mt := mtimeOf(a)
		return !mt.IsZero() && st.ModTime().Unix() == mt.Unix(), nil
	}
	if st.Size() != a.Size {
		return false, nil
	}
	f, err := root.Open(rel)
	if err != nil {
		return false, err
	}
	defer f.Close()
	return sameContent(f, a.Size, a)
}

// sameContent compares src[0:size] with the object's checksum (CRC32C, else MD5; neither:
// not the same).
func sameContent(src io.ReaderAt, size int64, a store.Attrs) (bool, error) {
	switch {
	case size != a.Size:
		return false, nil
	case a.HasCRC32C:
		crc, err := sectionCRC(src, 0, size)
		return crc == a.CRC32C, err
	case len(a.MD5) > 0:
		h := md5.New()
		if _, err := io.Copy(h, io.NewSectionReader(src, 0, size)); err != nil {
			return false, err
		}
		return bytes.Equal(h.Sum(nil), a.MD5), nil
	}
	return false, nil
}

// --- uploads -------------------------------------------------------------------------------

// UploadTree copies every regular file under localRoot (symlinks to files followed, symlinks
// to directories skipped) to remoteDir/<relative path>. Names are made with
// connspec.PathToName and must be valid UTF-8 without CR/LF (GCS's rules). An existing object
// identical to the file (size and CRC32C) is skipped; a different one is a failure unless
// opts.SkipUnchanged or opts.Force replaces it (under a generation precondition). Filters:
// opts.Exclude, opts.Since (local mtime). Each object records the file's mtime in MtimeKey.
// Per-file failures are in the Summary; the error is for the operation as a whole.
func UploadTree(ctx context.Context, b store.Bucket, localRoot, remoteDir string, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	t := newTally(opts.Progress)
	type item struct {
		local, name string
		size        int64
	}
	var items []item
	var refused []Event
	var total int64
	err := filepath.WalkDir(localRoot, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			refused = append(refused, Event{Name: p, Err: err})
			if d != nil && d.IsDir() && p != localRoot {
				return fs.SkipDir
			}
			return nil
		}
		if p == localRoot {
			return nil
		}
		rel, err := filepath.Rel(localRoot, p)
		if err != nil {
			refused = append(refused, Event{Name: p, Err: err})
			return nil
		}
		slash := filepath.ToSlash(rel)
		if excluded(slash, opts.Exclude) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows symlinks
		switch {
		case err != nil:
			refused = append(refused, Event{Name: p, Err: err})
			return nil
		case st.IsDir():
			opts.Logger.Debug("not following symlink to a directory", "path", p)
			t.done(Event{Name: p, Skipped: true})
			return nil
		case !st.Mode().IsRegular():
			refused = append(refused, Event{Name: p, Err: fmt.Errorf("not a regular file (%s)", st.Mode().Type())})
			return nil
		}
		if !opts.Since.IsZero() && !st.ModTime().After(opts.Since) {
			return nil
		}
		name, err := connspec.PathToName(rel)
		if err == nil {
			err = nameOK(name)
		}
		if err != nil {
			refused = append(refused, Event{Name: p, Err: fmt.Errorf("refused: %w", err)})
			return nil
		}
		items = append(items, item{local: p, name: joinName(remoteDir, name), size: st.Size()})
		total += st.Size()
		return nil
	})
	if err != nil {
		return t.summary(), fmt.Errorf("upload %s: %w", localRoot, err)
	}
	if opts.Confirm != nil && !opts.Confirm(int64(len(items)), total) {
		return t.summary(), ErrAborted
	}
	opts.Progress.Total(int64(len(items)), total)
	for _, ev := range refused {
		t.done(ev)
	}
	t.forEach(ctx, opts.Workers, len(items), func(ctx context.Context, i int) Event {
		return uploadOne(ctx, b, items[i].local, items[i].name, opts)
	})
	return t.summary(), ctx.Err()
}

// UploadFile uploads one local file as the object name with UploadTree's rules for an
// existing object.
func UploadFile(ctx context.Context, b store.Bucket, local, name string, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	t := newTally(opts.Progress)
	if err := nameOK(name); err != nil {
		return t.summary(), err
	}
	st, err := os.Stat(local)
	if err != nil {
		return t.summary(), err
	}
	opts.Progress.Total(1, st.Size())
	t.done(uploadOne(ctx, b, local, name, opts))
	return t.summary(), ctx.Err()
}

// nameOK checks a whole object name made from a local path: it must name a file (not empty,
// no trailing slash) and pass GCS's own rules (connspec.ObjectNameOK).
func nameOK(name string) error {
	if name == "" || strings.HasSuffix(name, "/") {
		return fmt.Errorf("object name %q: %w: names no file", name, connspec.ErrUnsafeName)
	}
	return connspec.ObjectNameOK(name)
}

// uploadOne applies the existing-object policy and uploads local as name.
func uploadOne(ctx context.Context, b store.Bucket, local, name string, opts Options) Event {
	ev := Event{Name: name}
	f, err := os.Open(local)
	if err != nil {
		ev.Err = err
		return ev
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		ev.Err = err
		return ev
	}
	if !st.Mode().IsRegular() {
		ev.Err = fmt.Errorf("%s is not a regular file", local)
		return ev
	}
	ev.Size = st.Size()
	wo := store.WriteOptions{
		ContentType: mime.TypeByExtension(path.Ext(name)),
		Metadata:    localAttrs(st).Metadata(),
	}
	// decide applies the policy to an existing object: proceed (with wo.IfGen set), or ev is final.
	decide := func(a store.Attrs) bool {
		if opts.Force {
			wo.IfGen = a.Generation
			return true
		}
		same, err := sameContent(f, ev.Size, a)
		switch {
		case err != nil:
			ev.Err = fmt.Errorf("read %s: %w", local, err)
		case same:
			ev.Skipped = true
		case opts.SkipUnchanged:
			wo.IfGen = a.Generation
			return true
		default:
			ev.Err = fmt.Errorf("object exists and differs from %s (use --skip-unchanged or --force to replace it)", local)
		}
		return false
	}
	checked := false
	if opts.Force || opts.SkipUnchanged || opts.DryRun || ev.Size >= statFirstSize {
		checked = true
		a, err := b.Stat(ctx, name)
		switch {
		case err == nil:
			if !decide(a) {
				return ev
			}
		case !errors.Is(err, store.ErrNotExist):
			ev.Err = err
			return ev
		}
	}
	if opts.DryRun {
		ev.DryRun = true
		return ev
	}
	_, err = Upload(ctx, b, name, f, ev.Size, wo, opts)
	if errors.Is(err, store.ErrPrecondition) && !checked {
		// The object exists (new objects are tried first); apply the policy and retry once.
		a, serr := b.Stat(ctx, name)
		if serr != nil {
			ev.Err = fmt.Errorf("%w (and stat: %v)", err, serr)
			return ev
		}
		if !decide(a) {
			return ev
		}
		_, err = Upload(ctx, b, name, f, ev.Size, wo, opts)
	}
	ev.Err = err
	return ev
}

// --- removal -------------------------------------------------------------------------------

// RemoveTree deletes every object strictly under dir + "/" and the placeholder "dir/" itself
// ("" for everything in the bucket view) — never "dir2/..." or "dir.csv". Each delete names
// the generation it listed, so an object replaced meanwhile is not deleted (on GCS; the
// emulator ignores delete preconditions). With opts.DryRun nothing is deleted and each object
// is reported with Event.DryRun. An object already gone counts as skipped.
func RemoveTree(ctx context.Context, b store.Bucket, dir string, opts Options) (Summary, error) {
	opts = opts.withDefaults()
	t := newTally(opts.Progress)
	var objs []store.Attrs
	var total int64
	if err := walk(ctx, b, dirPrefix(dir), func(a store.Attrs) error {
		objs = append(objs, a)
		total += a.Size
		return nil
	}); err != nil {
		return t.summary(), err
	}
	if opts.Confirm != nil && !opts.Confirm(int64(len(objs)), total) {
		return t.summary(), ErrAborted
	}
	opts.Progress.Total(int64(len(objs)), total)
	t.forEach(ctx, opts.Workers, len(objs), func(ctx context.Context, i int) Event {
		a := objs[i]
		ev := Event{Name: a.Name, Size: a.Size, DryRun: opts.DryRun}
		if !opts.DryRun {
			switch err := b.Delete(ctx, a.Name, a.Generation); {
			case errors.Is(err, store.ErrNotExist):
				ev.Skipped = true
			case err != nil:
				ev.Err = err
			}
		}
		return ev
	})
	return t.summary(), ctx.Err()
}

// localAttrs are the POSIX attributes of a local file to record with its object (the keys of
// gsutil cp -P: mode, owner, times).
func localAttrs(st fs.FileInfo) posixmd.Attrs {
	pa := posixmd.Attrs{Mtime: st.ModTime(), Mode: uint32(st.Mode().Perm()), HasMode: true}
	for fm, bit := range map[os.FileMode]uint32{os.ModeSetuid: 0o4000, os.ModeSetgid: 0o2000, os.ModeSticky: 0o1000} {
		if st.Mode()&fm != 0 {
			pa.Mode |= bit
		}
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		pa.UID, pa.HasUID, pa.GID, pa.HasGID = sys.Uid, true, sys.Gid, true
		pa.Atime = time.Unix(sys.Atim.Unix())
	}
	return pa
}
