package store

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// WithPrefix returns a view of b in which only objects whose names start with prefix exist, and
// every name (arguments, Attrs.Name, listed prefixes) is relative to prefix. prefix is used as
// given: pass "a/b/" (with the trailing slash) for a directory. WithPrefix(b, "") returns b.
//
// Name returns the underlying bucket's name. Options passed in are copied, never modified.
// The empty relative name is refused (it would address the prefix itself), as are page tokens
// from a different view: tokens pass through unchanged, so only use a token with the view
// that returned it.
func WithPrefix(b Bucket, prefix string) Bucket {
	if prefix == "" {
		return b
	}
	if p, ok := b.(*prefixed); ok {
		return &prefixed{b: p.b, prefix: p.prefix + prefix}
	}
	return &prefixed{b: b, prefix: prefix}
}

type prefixed struct {
	b      Bucket
	prefix string
}

var _ Bucket = (*prefixed)(nil)

func (p *prefixed) full(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("store: empty object name under prefix %q of bucket %s", p.prefix, p.b.Name())
	}
	return p.prefix + name, nil
}

func (p *prefixed) rel(a Attrs) Attrs {
	a.Name = strings.TrimPrefix(a.Name, p.prefix)
	return a
}

func (p *prefixed) Name() string { return p.b.Name() }

func (p *prefixed) Stat(ctx context.Context, name string) (Attrs, error) {
	full, err := p.full(name)
	if err != nil {
		return Attrs{}, err
	}
	a, err := p.b.Stat(ctx, full)
	if err != nil {
		return Attrs{}, err
	}
	return p.rel(a), nil
}

func (p *prefixed) List(ctx context.Context, opts ListOptions) (Page, error) {
	o := opts // copy: the caller's struct is not modified
	o.Prefix = p.prefix + opts.Prefix
	pg, err := p.b.List(ctx, o)
	if err != nil {
		return Page{}, err
	}
	out := Page{NextPageToken: pg.NextPageToken}
	if len(pg.Objects) > 0 {
		out.Objects = make([]Attrs, 0, len(pg.Objects))
		for _, a := range pg.Objects {
			out.Objects = append(out.Objects, p.rel(a))
		}
	}
	if len(pg.Prefixes) > 0 {
		out.Prefixes = make([]string, 0, len(pg.Prefixes))
		for _, s := range pg.Prefixes {
			out.Prefixes = append(out.Prefixes, strings.TrimPrefix(s, p.prefix))
		}
	}
	return out, nil
}

func (p *prefixed) NewRangeReader(ctx context.Context, name string, gen, off, n int64) (io.ReadCloser, error) {
	full, err := p.full(name)
	if err != nil {
		return nil, err
	}
	return p.b.NewRangeReader(ctx, full, gen, off, n)
}

func (p *prefixed) NewWriter(ctx context.Context, name string, opts WriteOptions) (Writer, error) {
	full, err := p.full(name)
	if err != nil {
		return nil, err
	}
	w, err := p.b.NewWriter(ctx, full, opts)
	if err != nil {
		return nil, err
	}
	return &prefixedWriter{Writer: w, p: p}, nil
}

type prefixedWriter struct {
	Writer
	p *prefixed
}

func (w *prefixedWriter) Commit() (Attrs, error) {
	a, err := w.Writer.Commit()
	if err != nil {
		return Attrs{}, err
	}
	return w.p.rel(a), nil
}

func (p *prefixed) Compose(ctx context.Context, dst string, srcs []string, opts WriteOptions) (Attrs, error) {
	fdst, err := p.full(dst)
	if err != nil {
		return Attrs{}, err
	}
	fsrcs := make([]string, len(srcs)) // a new slice: the caller's is not modified
	for i, s := range srcs {
		if fsrcs[i], err = p.full(s); err != nil {
			return Attrs{}, err
		}
	}
	a, err := p.b.Compose(ctx, fdst, fsrcs, opts)
	if err != nil {
		return Attrs{}, err
	}
	return p.rel(a), nil
}

func (p *prefixed) Copy(ctx context.Context, src string, srcGen int64, dst string, opts WriteOptions) (Attrs, error) {
	fsrc, err := p.full(src)
	if err != nil {
		return Attrs{}, err
	}
	fdst, err := p.full(dst)
	if err != nil {
		return Attrs{}, err
	}
	a, err := p.b.Copy(ctx, fsrc, srcGen, fdst, opts)
	if err != nil {
		return Attrs{}, err
	}
	return p.rel(a), nil
}

func (p *prefixed) Delete(ctx context.Context, name string, gen int64) error {
	full, err := p.full(name)
	if err != nil {
		return err
	}
	return p.b.Delete(ctx, full, gen)
}

func (p *prefixed) UpdateMetadata(ctx context.Context, name string, gen int64, md map[string]string) (Attrs, error) {
	full, err := p.full(name)
	if err != nil {
		return Attrs{}, err
	}
	a, err := p.b.UpdateMetadata(ctx, full, gen, md)
	if err != nil {
		return Attrs{}, err
	}
	return p.rel(a), nil
}
