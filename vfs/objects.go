package vfs

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"path"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/store"
)

// Objects is the namespace of one connection: the objects of a bucket under a prefix, named by
// paths relative to it ("a/b.txt"; "" is the connection's root directory). Calls that change
// the bucket run on a context the caller's interrupts do not cancel: a change cut off
// mid-request may still land, so the caller would get EINTR for something that happened.
// Deadlines of ctx still apply. It is safe for concurrent use.
type Objects struct {
	bucket store.Bucket // the whole bucket
	prefix string       // "" or "a/b/"
}

// NewObjects returns the namespace of the objects of bucket (the whole bucket) under prefix
// ("" or a normalised "a/b/").
func NewObjects(bucket store.Bucket, prefix string) *Objects {
	return &Objects{bucket: bucket, prefix: prefix}
}

// Bucket is the whole bucket.
func (o *Objects) Bucket() store.Bucket { return o.bucket }

// Name is the full object name of the file at p.
func (o *Objects) Name(p string) string { return o.prefix + p }

// DirPrefix is the full object prefix that lists the directory at p (its placeholder's name).
func (o *Objects) DirPrefix(p string) string {
	if p == "" {
		return o.prefix
	}
	return o.prefix + p + "/"
}

// RenameWorkers bounds the copies and deletes in flight while a directory moves.
const RenameWorkers = 8

// listPageSize is the page size of the listings the core makes.
const listPageSize = 1000

// ContentType guesses an object's content type from its name's extension.
func ContentType(p string) string {
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// PutNew writes a small object at path p (a directory's placeholder is "dir/") that must not
// exist: ErrExists when it does. wo.IfGen is ignored.
func (o *Objects) PutNew(ctx context.Context, p string, data []byte, wo store.WriteOptions) (store.Attrs, error) {
	full := o.Name(p)
	wo.IfGen = 0
	w, err := o.bucket.NewWriter(context.WithoutCancel(ctx), full, wo)
	if err != nil {
		return store.Attrs{}, err
	}
	if _, err := w.Write(data); err != nil {
		w.Abort()
		return store.Attrs{}, err
	}
	attrs, err := w.Commit()
	if errors.Is(err, store.ErrPrecondition) {
		return store.Attrs{}, fmt.Errorf("gs://%s/%s: %w", o.bucket.Name(), full, ErrExists)
	}
	return attrs, err
}

// Delete deletes generation gen of the object at p. A generation already gone is fine when
// nothing is live any more (the outcome asked for); if another generation is live, someone
// replaced the object, and Delete fails with ErrStale rather than remove what this mount never
// saw.
func (o *Objects) Delete(ctx context.Context, p string, gen int64) error {
	full := o.Name(p)
	err := o.bucket.Delete(context.WithoutCancel(ctx), full, gen)
	if err == nil {
		return nil
	}
	if !errors.Is(err, store.ErrNotExist) && !errors.Is(err, store.ErrPrecondition) {
		return err
	}
	live, serr := o.bucket.Stat(ctx, full)
	if errors.Is(serr, store.ErrNotExist) {
		return nil
	}
	if serr != nil {
		return serr
	}
	return fmt.Errorf("delete gs://%s/%s: generation %d was replaced by %d behind the mount: %w", o.bucket.Name(), full, gen, live.Generation, ErrStale)
}

// RemoveDir deletes the placeholder of the directory at p, if it has one. It does not check
// that the directory is empty (CheckEmpty does).
func (o *Objects) RemoveDir(ctx context.Context, p string) error {
	err := o.bucket.Delete(context.WithoutCancel(ctx), o.DirPrefix(p), 0)
	if err != nil && !errors.Is(err, store.ErrNotExist) {
		return err
	}
	return nil
}

// CheckEmpty fails with ErrNotEmpty if any object but its placeholder is below the directory
// at p, even one a listing would hide (a two-item listing decides).
func (o *Objects) CheckEmpty(ctx context.Context, p string) error {
	prefix := o.DirPrefix(p)
	page, err := o.bucket.List(ctx, store.ListOptions{Prefix: prefix, Delimiter: "/", PageSize: 2})
	if err != nil {
		return err
	}
	if len(page.Prefixes) > 0 {
		return fmt.Errorf("%s has subdirectories: %w", p, ErrNotEmpty)
	}
	for _, a := range page.Objects {
		if a.Name != prefix {
			return fmt.Errorf("%s holds objects: %w", p, ErrNotEmpty)
		}
	}
	return nil
}

// MoveFile moves generation gen of the object at src to dst: a copy under the precondition
// ifGen (the target generation it replaces; 0: dst must not exist), then a delete of the source
// generation (see Delete). The copy keeps the source's metadata. A failed copy changes
// nothing and returns a zero Attrs. When the copy succeeded but the delete failed, both names
// exist: MoveFile returns the copy's attributes and the error, and the caller must treat the
// file as moved.
func (o *Objects) MoveFile(ctx context.Context, src string, gen int64, dst string, ifGen int64) (store.Attrs, error) {
	srcFull, dstFull := o.Name(src), o.Name(dst)
	attrs, err := o.bucket.Copy(context.WithoutCancel(ctx), srcFull, gen, dstFull, store.WriteOptions{IfGen: ifGen})
	if err != nil {
		return store.Attrs{}, fmt.Errorf("copy gs://%s/%s gen %d to %s: %w", o.bucket.Name(), srcFull, gen, dstFull, err)
	}
	if err := o.Delete(ctx, src, gen); err != nil {
		return attrs, fmt.Errorf("copied to %s but could not delete the source (both names exist now): %w", dst, err)
	}
	return attrs, nil
}

// MoveDir moves every object below the directory src to the same relative name below dst,
// placeholders included: copies (each under the precondition that the target does not exist),
// then deletes of the source generations. dstExists says dst is an empty directory whose
// placeholder makes way. It is not atomic: a failure part way leaves objects under both names
// (never fewer than before), and another client can see the intermediate state.
//
// It returns the new attributes of every object moved, by its new path relative to the
// connection ("dst/rel"; a placeholder's path ends in "/"). A failure before every copy is
// done returns a nil map; a failure of the deletes returns the map and the error, and the
// caller must treat the directory as moved. A directory with no object at all (known only from
// the caller's own state) gets a placeholder at dst.
func (o *Objects) MoveDir(ctx context.Context, src, dst string, dstExists bool) (map[string]store.Attrs, error) {
	srcPrefix, dstPrefix := o.DirPrefix(src), o.DirPrefix(dst)
	objs, err := o.listAll(ctx, srcPrefix)
	if err != nil {
		return nil, err
	}
	if dstExists {
		if err := o.RemoveDir(ctx, dst); err != nil {
			return nil, err
		}
	}
	if len(objs) == 0 {
		wo := store.WriteOptions{ContentType: ContentType(dst + "/")}
		if _, err := o.PutNew(ctx, dst+"/", nil, wo); err != nil && !errors.Is(err, ErrExists) {
			return nil, err
		}
	}
	copied, err := o.copyAll(ctx, objs, srcPrefix, dstPrefix)
	if err != nil {
		return nil, fmt.Errorf("rename directory %s to %s (not atomic: some objects may exist under both names): %w", src, dst, err)
	}
	moved := make(map[string]store.Attrs, len(objs))
	for i, a := range objs {
		moved[dst+"/"+strings.TrimPrefix(a.Name, srcPrefix)] = copied[i]
	}
	if err := o.deleteAll(ctx, objs); err != nil {
		return moved, fmt.Errorf("rename directory %s to %s: copied, but some sources remain: %w", src, dst, err)
	}
	return moved, nil
}

// listAll lists every object under prefix, all levels.
func (o *Objects) listAll(ctx context.Context, prefix string) ([]store.Attrs, error) {
	var objs []store.Attrs
	token := ""
	for {
		page, err := o.bucket.List(ctx, store.ListOptions{Prefix: prefix, PageToken: token, PageSize: listPageSize})
		if err != nil {
			return nil, fmt.Errorf("list %q: %w", prefix, err)
		}
		objs = append(objs, page.Objects...)
		if page.NextPageToken == "" || page.NextPageToken == token {
			return objs, nil
		}
		token = page.NextPageToken
	}
}

// copyAll copies each object of objs from below srcPrefix to the same name below dstPrefix
// (which must not exist), RenameWorkers at a time, and returns the copies' attributes.
func (o *Objects) copyAll(ctx context.Context, objs []store.Attrs, srcPrefix, dstPrefix string) ([]store.Attrs, error) {
	copied := make([]store.Attrs, len(objs))
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.SetLimit(RenameWorkers)
	for i, a := range objs {
		g.Go(func() error {
			to := dstPrefix + strings.TrimPrefix(a.Name, srcPrefix)
			c, err := o.bucket.Copy(gctx, a.Name, a.Generation, to, store.WriteOptions{IfGen: 0})
			if err != nil {
				return fmt.Errorf("copy %s to %s: %w", a.Name, to, err)
			}
			copied[i] = c
			return nil
		})
	}
	return copied, g.Wait()
}

// deleteAll deletes the generations of objs (one already gone is fine), RenameWorkers at a time.
func (o *Objects) deleteAll(ctx context.Context, objs []store.Attrs) error {
	g, gctx := errgroup.WithContext(context.WithoutCancel(ctx))
	g.SetLimit(RenameWorkers)
	for _, a := range objs {
		g.Go(func() error {
			if err := o.bucket.Delete(gctx, a.Name, a.Generation); err != nil && !errors.Is(err, store.ErrNotExist) {
				return fmt.Errorf("delete %s: %w", a.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Stat asks the bucket what the name at path is: a directory if any object has the prefix "path/"
// (a directory wins over an object of the same name), else the object "path", else nothing.
// Both questions are asked at once, and each answer counts on its own: a listing that shows a
// directory is enough whatever the stat did, and an object the stat found is the answer when
// the listing failed (the directory of the same name it would have shown is an unusual
// layout; the next lookup after the TTL asks again). Only when neither answers is the lookup
// failed. Nothing there: an error wrapping store.ErrNotExist.
func (o *Objects) Stat(ctx context.Context, path string) (Info, error) {
	full := o.Name(path)
	var (
		isDir            bool
		placeholder      *store.Attrs
		attrs            store.Attrs
		listErr, statErr error
		wg               sync.WaitGroup
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		page, err := o.bucket.List(ctx, store.ListOptions{Prefix: full + "/", Delimiter: "/", PageSize: 1})
		if err != nil {
			listErr = err
			return
		}
		isDir = len(page.Objects) > 0 || len(page.Prefixes) > 0
		if len(page.Objects) > 0 && page.Objects[0].Name == full+"/" {
			placeholder = &page.Objects[0]
		}
	}()
	go func() {
		defer wg.Done()
		attrs, statErr = o.bucket.Stat(ctx, full)
	}()
	wg.Wait()
	switch {
	case listErr == nil && isDir:
		return DirInfo(placeholder), nil
	case statErr == nil:
		return InfoFromAttrs(attrs), nil // found, whatever the listing did
	case listErr != nil:
		return Info{}, listErr // no object, or no answer: a directory is not ruled out
	}
	return Info{}, statErr // ErrNotExist: neither an object nor a directory; or no answer
}
