// Package memstore is an in-memory store.Bucket: the whole contract of store/store.go
// (generations, metagenerations, preconditions on every write, CRC32C and MD5, compose, copy,
// metadata updates, listings with a delimiter and pages) without a network or an emulator. It
// passes storetest.Run, the suite store/gcs passes against fake-gcs-server, so code written
// against store.Bucket can be tested on it in milliseconds.
//
// It holds one live generation per name, as a GCS bucket without versioning does: a replaced
// or deleted generation is gone (reads, copies and deletes of it fail with store.ErrNotExist).
// Unlike fake-gcs-server it enforces the preconditions of compose, copy, delete and metadata
// updates, refuses a compose of a missing source with store.ErrNotExist, bounds a listing page
// by objects and prefixes together (as GCS does), and refuses object names GCS refuses
// (connspec.ObjectNameOK, 1,024 bytes at most).
//
// Tests can make calls fail with SetFault, and inspect the bucket with Names and Requests.
package memstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/plxfs/plxfs/connspec"
	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/store"
)

// Op names a Bucket method, for SetFault and Requests.
type Op string

// The operations of a Bucket. OpCommit is a writer's Commit (OpWrite is NewWriter).
const (
	OpStat           Op = "stat"
	OpList           Op = "list"
	OpRead           Op = "read"
	OpWrite          Op = "write"
	OpCommit         Op = "commit"
	OpCompose        Op = "compose"
	OpCopy           Op = "copy"
	OpDelete         Op = "delete"
	OpUpdateMetadata Op = "update-metadata"
)

// defaultPageSize is GCS's default and maximum listing page.
const defaultPageSize = 1000

// maxComposeSources is GCS's limit on the sources of one compose.
const maxComposeSources = 32

// Bucket is an in-memory bucket. It is safe for concurrent use.
type Bucket struct {
	name string

	// mu guards the fields below; it is never held while calling a fault function.
	mu       sync.Mutex
	objects  map[string]*object
	lastGen  int64
	fault    func(op Op, name string) error
	requests map[Op]int
}

// object is one live generation. data is never modified after the object is stored, so
// readers share it without copying.
type object struct {
	attrs store.Attrs
	data  []byte
}

var _ store.Bucket = (*Bucket)(nil)

// New returns an empty bucket called name.
func New(name string) *Bucket {
	return &Bucket{name: name, objects: map[string]*object{}, requests: map[Op]int{}}
}

// Name is the bucket's name.
func (b *Bucket) Name() string { return b.name }

// SetFault makes every call consult fn first: a non-nil error is returned (wrapped) and the call
// does nothing. Writers consult it at NewWriter (OpWrite) and at Commit (OpCommit). fn runs
// without the bucket's lock and may be called concurrently. SetFault(nil) removes it.
func (b *Bucket) SetFault(fn func(op Op, name string) error) {
	b.mu.Lock()
	b.fault = fn
	b.mu.Unlock()
}

// Requests returns how many calls of each operation the bucket has received.
func (b *Bucket) Requests() map[Op]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return maps.Clone(b.requests)
}

// Names returns the names of the live objects that start with prefix, sorted.
func (b *Bucket) Names(prefix string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for n := range b.objects {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// begin counts a call and checks its context, its name and the fault function.
func (b *Bucket) begin(ctx context.Context, op Op, name string) error {
	b.mu.Lock()
	b.requests[op]++
	fault := b.fault
	b.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return b.errorf(op, name, "%w", err)
	}
	if op != OpList {
		if err := checkName(name); err != nil {
			return b.errorf(op, name, "%w", err)
		}
	}
	if fault != nil {
		if err := fault(op, name); err != nil {
			return b.errorf(op, name, "injected fault: %w", err)
		}
	}
	return nil
}

// checkName applies GCS's rules for object names.
func checkName(name string) error {
	if name == "" {
		return errors.New("empty object name")
	}
	return connspec.ObjectNameOK(name)
}

func (b *Bucket) errorf(op Op, name, format string, args ...any) error {
	return fmt.Errorf("memstore: %s gs://%s/%s: %w", op, b.name, name, fmt.Errorf(format, args...))
}

// liveLocked returns the live generation of name, or an error wrapping ErrNotExist (gen is 0 or
// a generation that is not the live one). b.mu is held.
func (b *Bucket) liveLocked(op Op, name string, gen int64) (*object, error) {
	o := b.objects[name]
	switch {
	case o == nil:
		return nil, b.errorf(op, name, "%w", store.ErrNotExist)
	case gen > 0 && o.attrs.Generation != gen:
		return nil, b.errorf(op, name, "generation %d: %w (live generation %d)", gen, store.ErrNotExist, o.attrs.Generation)
	}
	return o, nil
}

// checkIfGenLocked applies a write precondition to name. b.mu is held.
func (b *Bucket) checkIfGenLocked(op Op, name string, ifGen int64) error {
	o := b.objects[name]
	switch {
	case ifGen < 0:
		return b.errorf(op, name, "negative IfGen %d", ifGen)
	case ifGen == 0 && o != nil:
		return b.errorf(op, name, "%w: the object exists (generation %d)", store.ErrPrecondition, o.attrs.Generation)
	case ifGen > 0 && o == nil:
		return b.errorf(op, name, "%w: the object does not exist (wanted generation %d)", store.ErrPrecondition, ifGen)
	case ifGen > 0 && o.attrs.Generation != ifGen:
		return b.errorf(op, name, "%w: live generation %d, wanted %d", store.ErrPrecondition, o.attrs.Generation, ifGen)
	}
	return nil
}

// storeLocked makes data the new live generation of name. b.mu is held.
func (b *Bucket) storeLocked(name string, data []byte, contentType string, md map[string]string, withMD5 bool) store.Attrs {
	b.lastGen++
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	a := store.Attrs{
		Name:           name,
		Size:           int64(len(data)),
		Generation:     b.lastGen,
		Metageneration: 1,
		Updated:        time.Now(),
		CRC32C:         crc32.Checksum(data, crc32c.Table),
		HasCRC32C:      true,
		ContentType:    contentType,
		Metadata:       cleanMetadata(md),
	}
	if withMD5 { // GCS keeps no MD5 for composite objects
		sum := md5.Sum(data)
		a.MD5 = sum[:]
	}
	b.objects[name] = &object{attrs: a, data: data}
	return cloneAttrs(a)
}

// cleanMetadata copies md without its empty values ("" means "remove" in plxfs).
func cleanMetadata(md map[string]string) map[string]string {
	var out map[string]string
	for k, v := range md {
		if v == "" {
			continue
		}
		if out == nil {
			out = make(map[string]string, len(md))
		}
		out[k] = v
	}
	return out
}

func cloneAttrs(a store.Attrs) store.Attrs {
	a.Metadata = maps.Clone(a.Metadata)
	a.MD5 = slices.Clone(a.MD5)
	return a
}

// live begins a call and returns generation gen of name (0: the live one). The object is
// immutable (a metadata update replaces it), so the caller reads it without the lock.
func (b *Bucket) live(ctx context.Context, op Op, name string, gen int64) (*object, error) {
	if err := b.begin(ctx, op, name); err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.liveLocked(op, name, gen)
}

// Stat returns the live generation's attributes.
func (b *Bucket) Stat(ctx context.Context, name string) (store.Attrs, error) {
	o, err := b.live(ctx, OpStat, name, 0)
	if err != nil {
		return store.Attrs{}, err
	}
	return cloneAttrs(o.attrs), nil
}

// List returns one page of the objects (and, with a delimiter, the common prefixes) under
// opts.Prefix, in name order. A page holds at most opts.PageSize entries (1,000 by default),
// objects and prefixes together; with opts.IncludeTrailingDelimiter, an object named like its
// common prefix comes in the same page as the prefix and counts as one entry with it. Page
// tokens are opaque: they name the last entry returned.
func (b *Bucket) List(ctx context.Context, opts store.ListOptions) (store.Page, error) {
	if err := b.begin(ctx, OpList, opts.Prefix); err != nil {
		return store.Page{}, err
	}
	size := opts.PageSize
	if size <= 0 || size > defaultPageSize {
		size = defaultPageSize
	}
	b.mu.Lock()
	names := make([]string, 0, len(b.objects))
	for n := range b.objects {
		if strings.HasPrefix(n, opts.Prefix) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var p store.Page
	after := opts.PageToken // entries up to and including the token were returned already
	count := 0
	for _, n := range names {
		entry, isPrefix := n, false
		if opts.Delimiter != "" {
			if i := strings.Index(n[len(opts.Prefix):], opts.Delimiter); i >= 0 {
				entry, isPrefix = n[:len(opts.Prefix)+i+len(opts.Delimiter)], true
			}
		}
		// Entries come in name order, and every name under a returned prefix maps to that
		// prefix: skipping what is not after the last entry returned skips both.
		if after != "" && entry <= after {
			continue
		}
		if count == size {
			p.NextPageToken = after
			break
		}
		count++
		after = entry
		if isPrefix {
			p.Prefixes = append(p.Prefixes, entry)
			// Names come in order and "p/d/" is the first name under the prefix "p/d/", so
			// the object named like the prefix, if any, is the one that opened it.
			if opts.IncludeTrailingDelimiter && n == entry {
				p.Objects = append(p.Objects, cloneAttrs(b.objects[n].attrs))
			}
		} else {
			p.Objects = append(p.Objects, cloneAttrs(b.objects[n].attrs))
		}
	}
	b.mu.Unlock()
	return p, nil
}

// NewRangeReader reads n bytes (n < 0: to the end) at off of generation gen (0: live). A read
// at or past the end returns no bytes.
func (b *Bucket) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	if off < 0 {
		return nil, b.errorf(OpRead, name, "negative offset %d", off)
	}
	o, err := b.live(ctx, OpRead, name, gen)
	if err != nil {
		return nil, err
	}
	data := o.data[min(off, int64(len(o.data))):]
	if n >= 0 && n < int64(len(data)) {
		data = data[:n]
	}
	return io.NopCloser(bytes.NewReader(data)), nil
}

// NewWriter starts a new generation of name. The bytes are kept in memory until Commit, which
// applies the precondition and the declared CRC32C.
func (b *Bucket) NewWriter(ctx context.Context, name string, opts store.WriteOptions) (store.Writer, error) {
	if err := b.begin(ctx, OpWrite, name); err != nil {
		return nil, err
	}
	if opts.IfGen < 0 {
		return nil, b.errorf(OpWrite, name, "negative IfGen %d", opts.IfGen)
	}
	opts.Metadata = maps.Clone(opts.Metadata)
	return &writer{b: b, ctx: ctx, name: name, opts: opts}, nil
}

// writer buffers one new generation until Commit.
type writer struct {
	b    *Bucket
	ctx  context.Context
	name string
	opts store.WriteOptions

	mu      sync.Mutex // guards the fields below
	buf     bytes.Buffer
	done    bool // committed or aborted
	aborted bool
	attrs   store.Attrs
	err     error
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, w.b.errorf(OpWrite, w.name, "write after commit or abort")
	}
	if err := w.ctx.Err(); err != nil {
		return 0, w.b.errorf(OpWrite, w.name, "%w", err)
	}
	return w.buf.Write(p)
}

func (w *writer) Commit() (store.Attrs, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		if w.aborted {
			return store.Attrs{}, w.b.errorf(OpCommit, w.name, "commit after abort")
		}
		return cloneAttrs(w.attrs), w.err
	}
	w.done = true
	w.attrs, w.err = w.commit()
	return cloneAttrs(w.attrs), w.err
}

func (w *writer) commit() (store.Attrs, error) {
	if err := w.b.begin(w.ctx, OpCommit, w.name); err != nil {
		return store.Attrs{}, err
	}
	data := bytes.Clone(w.buf.Bytes())
	w.buf = bytes.Buffer{}
	if sum := crc32.Checksum(data, crc32c.Table); w.opts.HasCRC32C && sum != w.opts.CRC32C {
		return store.Attrs{}, w.b.errorf(OpCommit, w.name, "CRC32C of the %d bytes written is %08x, caller declared %08x", len(data), sum, w.opts.CRC32C)
	}
	w.b.mu.Lock()
	defer w.b.mu.Unlock()
	if err := w.b.checkIfGenLocked(OpCommit, w.name, w.opts.IfGen); err != nil {
		return store.Attrs{}, err
	}
	return w.b.storeLocked(w.name, data, w.opts.ContentType, w.opts.Metadata, true), nil
}

func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done, w.aborted = true, true
	w.buf = bytes.Buffer{}
}

// Compose concatenates 1 to 32 live source objects into dst under opts.IfGen. A missing source
// fails with ErrNotExist; a declared CRC32C that does not match the result fails and creates
// nothing.
func (b *Bucket) Compose(ctx context.Context, dst string, srcs []string, opts store.WriteOptions) (store.Attrs, error) {
	if err := b.begin(ctx, OpCompose, dst); err != nil {
		return store.Attrs{}, err
	}
	if len(srcs) == 0 || len(srcs) > maxComposeSources {
		return store.Attrs{}, b.errorf(OpCompose, dst, "%d sources (want 1 to %d)", len(srcs), maxComposeSources)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var data []byte
	for _, s := range srcs {
		o, err := b.liveLocked(OpCompose, s, 0)
		if err != nil {
			return store.Attrs{}, err
		}
		data = append(data, o.data...)
	}
	if sum := crc32.Checksum(data, crc32c.Table); opts.HasCRC32C && sum != opts.CRC32C {
		return store.Attrs{}, b.errorf(OpCompose, dst, "CRC32C of the composed object is %08x, caller declared %08x", sum, opts.CRC32C)
	}
	if err := b.checkIfGenLocked(OpCompose, dst, opts.IfGen); err != nil {
		return store.Attrs{}, err
	}
	return b.storeLocked(dst, data, opts.ContentType, opts.Metadata, false), nil
}

// Copy copies generation srcGen of src (0: live) to dst under opts.IfGen. The copy keeps the
// source's metadata unless opts.Metadata is non-nil, and its content type unless
// opts.ContentType is set.
func (b *Bucket) Copy(ctx context.Context, src string, srcGen int64, dst string, opts store.WriteOptions) (store.Attrs, error) {
	if err := b.begin(ctx, OpCopy, dst); err != nil {
		return store.Attrs{}, err
	}
	if err := checkName(src); err != nil {
		return store.Attrs{}, b.errorf(OpCopy, src, "%w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.liveLocked(OpCopy, src, srcGen)
	if err != nil {
		return store.Attrs{}, err
	}
	if err := b.checkIfGenLocked(OpCopy, dst, opts.IfGen); err != nil {
		return store.Attrs{}, err
	}
	md, ct := o.attrs.Metadata, o.attrs.ContentType
	if opts.Metadata != nil {
		md = opts.Metadata
	}
	if opts.ContentType != "" {
		ct = opts.ContentType
	}
	a := b.storeLocked(dst, o.data, ct, md, o.attrs.MD5 != nil)
	b.objects[dst].attrs.ContentEncoding = o.attrs.ContentEncoding
	a.ContentEncoding = o.attrs.ContentEncoding
	return a, nil
}

// Delete removes generation gen of name (0: the live one); any other generation is
// ErrNotExist.
func (b *Bucket) Delete(ctx context.Context, name string, gen int64) error {
	if err := b.begin(ctx, OpDelete, name); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, err := b.liveLocked(OpDelete, name, gen); err != nil {
		return err
	}
	delete(b.objects, name)
	return nil
}

// UpdateMetadata merges md into the live generation's metadata ("" removes a key) and moves its
// metageneration on; gen > 0 must be the live generation (else ErrPrecondition).
func (b *Bucket) UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (store.Attrs, error) {
	if err := b.begin(ctx, OpUpdateMetadata, name); err != nil {
		return store.Attrs{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	o, err := b.liveLocked(OpUpdateMetadata, name, 0)
	if err != nil {
		return store.Attrs{}, err
	}
	if gen > 0 && o.attrs.Generation != gen {
		return store.Attrs{}, b.errorf(OpUpdateMetadata, name, "%w: live generation %d, wanted %d", store.ErrPrecondition, o.attrs.Generation, gen)
	}
	if len(md) == 0 {
		return cloneAttrs(o.attrs), nil
	}
	merged := maps.Clone(o.attrs.Metadata)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, md)
	a := o.attrs // o.data is shared, the attributes are replaced
	a.Metadata = cleanMetadata(merged)
	a.Metageneration++
	a.Updated = time.Now()
	b.objects[name] = &object{attrs: a, data: o.data}
	return cloneAttrs(a), nil
}

// Put stores data as a new generation of name whatever is there (a test's out-of-band write,
// like an emulator's PutObject) and returns its attributes.
func (b *Bucket) Put(name string, data []byte, md map[string]string) (store.Attrs, error) {
	if err := checkName(name); err != nil {
		return store.Attrs{}, b.errorf(OpWrite, name, "%w", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.storeLocked(name, bytes.Clone(data), "", md, true), nil
}

// Content returns the bytes of the live generation of name.
func (b *Bucket) Content(name string) ([]byte, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	o := b.objects[name]
	if o == nil {
		return nil, false
	}
	return bytes.Clone(o.data), true
}
