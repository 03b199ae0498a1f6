package emulator

import (
	"net/http"
	"net/url"
	"strings"
)

// Counts reports the requests that reached the emulator since Start or the last ResetCounts,
// by kind. Every request is in Total and in exactly one kind counter.
type Counts struct {
	Total int

	MediaGets int    // object downloads (JSON alt=media, /download/..., or XML /<bucket>/<object>)
	Reads     []Read // one entry per media GET, in arrival order
	Stats     int    // object metadata GETs and HEADs
	Lists     int    // object listings
	Uploads   int    // requests under /upload/: simple, multipart, and every resumable-upload chunk
	Composes  int
	Copies    int // rewriteTo and copyTo
	Deletes   int // object deletes
	Patches   int // object metadata updates (PATCH/PUT on an object)
	Other     int // bucket calls, internal endpoints, anything unrecognised
}

// Read is one object media GET.
type Read struct {
	Bucket     string
	Object     string
	Range      string // the Range header as sent ("bytes=0-1023"); "" for a whole-object read
	Generation string // the generation query parameter; "" when absent
}

// ReadsOf returns the media GETs of one object, in arrival order.
func (c Counts) ReadsOf(bucket, object string) []Read {
	var out []Read
	for _, r := range c.Reads {
		if r.Bucket == bucket && r.Object == object {
			out = append(out, r)
		}
	}
	return out
}

// Requests returns a snapshot of the counters.
func (s *Server) Requests() Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	c.Reads = append([]Read(nil), s.counts.Reads...)
	return c
}

// ResetCounts zeroes the counters.
func (s *Server) ResetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counts = Counts{}
}

func (s *Server) counting(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.record(r)
		next.ServeHTTP(w, r)
	})
}

func (s *Server) record(r *http.Request) {
	kind, bucket, object := classify(r)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.counts
	c.Total++
	switch kind {
	case kindMedia:
		c.MediaGets++
		c.Reads = append(c.Reads, Read{
			Bucket:     bucket,
			Object:     object,
			Range:      r.Header.Get("Range"),
			Generation: r.URL.Query().Get("generation"),
		})
	case kindStat:
		c.Stats++
	case kindList:
		c.Lists++
	case kindUpload:
		c.Uploads++
	case kindCompose:
		c.Composes++
	case kindCopy:
		c.Copies++
	case kindDelete:
		c.Deletes++
	case kindPatch:
		c.Patches++
	default:
		c.Other++
	}
}

type kind int

const (
	kindOther kind = iota
	kindMedia
	kindStat
	kindList
	kindUpload
	kindCompose
	kindCopy
	kindDelete
	kindPatch
)

// classify sorts a request by the GCS API route it addresses. Object names arrive escaped
// ("a%2Fb") on the JSON API and raw ("a/b") on the XML API; both are returned unescaped.
func classify(r *http.Request) (k kind, bucket, object string) {
	p := r.URL.EscapedPath()
	switch {
	case strings.HasPrefix(p, "/upload/"):
		return kindUpload, "", ""
	case strings.HasPrefix(p, "/download/storage/v1/b/"):
		b, o, _ := splitBucketObject(strings.TrimPrefix(p, "/download/storage/v1/b/"))
		return kindMedia, b, o
	case strings.HasPrefix(p, "/storage/v1/b/"):
		b, rest, hasObj := splitBucketObject(strings.TrimPrefix(p, "/storage/v1/b/"))
		if !hasObj {
			if strings.HasSuffix(p, "/o") || strings.HasSuffix(p, "/o/") {
				if r.Method == http.MethodGet {
					return kindList, b, ""
				}
			}
			return kindOther, b, ""
		}
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(rest, "/compose"):
			return kindCompose, b, strings.TrimSuffix(rest, "/compose")
		case r.Method == http.MethodPost && (strings.Contains(rest, "/rewriteTo/b/") || strings.Contains(rest, "/copyTo/b/")):
			src, _, _ := strings.Cut(rest, "/rewriteTo/b/")
			src, _, _ = strings.Cut(src, "/copyTo/b/")
			return kindCopy, b, src
		case strings.HasSuffix(rest, "/acl") || strings.Contains(rest, "/acl/"):
			return kindOther, b, rest
		case r.Method == http.MethodGet && r.URL.Query().Get("alt") == "media":
			return kindMedia, b, rest
		case r.Method == http.MethodGet || r.Method == http.MethodHead:
			return kindStat, b, rest
		case r.Method == http.MethodDelete:
			return kindDelete, b, rest
		case r.Method == http.MethodPatch || r.Method == http.MethodPut || r.Method == http.MethodPost:
			return kindPatch, b, rest
		}
		return kindOther, b, rest
	case strings.HasPrefix(p, "/_internal/"), strings.HasPrefix(p, "/batch/"):
		return kindOther, "", ""
	}
	// XML API: /<bucket>/<object>.
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		b, o, ok := strings.Cut(strings.TrimPrefix(p, "/"), "/")
		if ok && o != "" {
			b, _ = url.PathUnescape(b)
			o, _ = url.PathUnescape(o)
			if r.Method == http.MethodHead {
				return kindStat, b, o
			}
			return kindMedia, b, o
		}
		if r.Method == http.MethodGet {
			b, _ = url.PathUnescape(b)
			return kindList, b, ""
		}
	}
	return kindOther, "", ""
}

// splitBucketObject splits "<bucket>/o/<escaped object...>" into the bucket and the unescaped
// remainder after "/o/". hasObj is false when there is no object part.
func splitBucketObject(s string) (bucket, rest string, hasObj bool) {
	b, after, _ := strings.Cut(s, "/")
	bucket, _ = url.PathUnescape(b)
	if !strings.HasPrefix(after, "o/") || len(after) == 2 {
		return bucket, "", false
	}
	rest = after[2:]
	if u, err := url.PathUnescape(rest); err == nil {
		rest = u
	}
	return bucket, rest, true
}
