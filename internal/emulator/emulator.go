package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Options configures Start. The zero value is a memory-backed emulator with no buckets.
type Options struct {
	// Backend is "memory" (the default when empty) or "filesystem".
	Backend string
	// Root is the filesystem backend's storage directory. Empty: a fresh temporary directory
	// (on /dev/shm when available) that Stop removes. Ignored by the memory backend.
	Root string
	// Buckets are created before Start returns.
	Buckets []string
	// Handler, when set, wraps the emulator's handler (e.g. a faultproxy). It sees every request
	// before the emulator does.
	Handler func(http.Handler) http.Handler
}

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	// Constant after Start.
	fake    *fakestorage.Server
	ln      net.Listener
	http    *http.Server
	host    string // "127.0.0.1:PORT"
	tempDir string // removed by Stop; "" when the caller owns Root
	served  chan struct{}

	stopOnce sync.Once

	mu     sync.Mutex // protects counts
	counts Counts
}

// Start starts an emulator listening on 127.0.0.1 on a free port.
func Start(opts Options) (*Server, error) {
	root := ""
	tempDir := ""
	switch opts.Backend {
	case "", "memory":
	case "filesystem":
		root = opts.Root
		if root == "" {
			dir, err := os.MkdirTemp(tmpBase(), "plxfs-emulator-")
			if err != nil {
				return nil, fmt.Errorf("emulator: filesystem backend root: %w", err)
			}
			root, tempDir = dir, dir
		}
	default:
		return nil, fmt.Errorf("emulator: unknown backend %q (want \"memory\" or \"filesystem\")", opts.Backend)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		removeAll(tempDir)
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	host := ln.Addr().String()
	fake, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		StorageRoot: root,
		Scheme:      "http",
		NoListener:  true,
		// The public host makes XML-API reads ("/<bucket>/<object>") work, and the external URL
		// makes resumable-upload session URLs point back at this listener.
		PublicHost:  host,
		ExternalURL: "http://" + host,
	})
	if err != nil {
		ln.Close()
		removeAll(tempDir)
		return nil, fmt.Errorf("emulator: %w", err)
	}

	s := &Server{fake: fake, ln: ln, host: host, tempDir: tempDir, served: make(chan struct{})}
	var h http.Handler = s.counting(fake.HTTPHandler())
	if opts.Handler != nil {
		h = opts.Handler(h)
	}
	s.http = &http.Server{Handler: h, ReadHeaderTimeout: time.Minute}
	go func() {
		defer close(s.served)
		_ = s.http.Serve(ln) // returns http.ErrServerClosed after Stop
	}()

	for _, b := range opts.Buckets {
		if err := s.CreateBucket(b); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}

// tmpBase prefers tmpfs, where the filesystem backend is fastest.
func tmpBase() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", ".plxfs-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return ""
}

func removeAll(dir string) {
	if dir != "" {
		_ = os.RemoveAll(dir)
	}
}

// URL returns the emulator's base URL, "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://" + s.host }

// Host returns "127.0.0.1:PORT", usable as STORAGE_EMULATOR_HOST.
func (s *Server) Host() string { return s.host }

// Fake returns the underlying fakestorage server, for assertions this package does not cover.
func (s *Server) Fake() *fakestorage.Server { return s.fake }

// Stop closes the listener and every open connection, and removes a temporary root. It is
// safe to call more than once.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.http.Shutdown(ctx); err != nil {
			_ = s.http.Close()
		}
		<-s.served
		s.fake.Stop()
		removeAll(s.tempDir)
	})
}

// CreateBucket creates a bucket (without versioning). Creating an existing bucket succeeds.
func (s *Server) CreateBucket(name string) (err error) {
	if name == "" {
		return errors.New("emulator: empty bucket name")
	}
	// CreateBucketWithOpts panics when the backend fails (e.g. the filesystem root is not
	// writable); turn that into an error.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("emulator: create bucket %q: %v", name, r)
		}
	}()
	s.fake.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: name})
	return nil
}

// PutObject stores an object directly in the backend (no HTTP, not counted), replacing any live
// generation. contentEncoding "gzip" marks data as gzip-compressed stored bytes.
func (s *Server) PutObject(bucket, name string, data []byte, contentEncoding string) error {
	_, err := s.PutObjectGen(bucket, name, data, contentEncoding)
	return err
}

// PutObjectGen is PutObject that also returns the new generation.
func (s *Server) PutObjectGen(bucket, name string, data []byte, contentEncoding string) (int64, error) {
	if bucket == "" || name == "" {
		return 0, errors.New("emulator: PutObject needs a bucket and an object name")
	}
	obj := fakestorage.Object{
		ObjectAttrs: fakestorage.ObjectAttrs{BucketName: bucket, Name: name, ContentEncoding: contentEncoding},
		Content:     data,
	}
	if err := s.fake.CreateObjectStreaming(obj.StreamingObject()); err != nil {
		return 0, fmt.Errorf("emulator: put gs://%s/%s: %w", bucket, name, err)
	}
	got, err := s.fake.GetObjectStreaming(bucket, name)
	if err != nil {
		return 0, fmt.Errorf("emulator: put gs://%s/%s: read back: %w", bucket, name, err)
	}
	got.Close()
	return got.Generation, nil
}

// Object is an object as the emulator stores it.
type Object struct {
	Content         []byte
	Generation      int64
	ContentEncoding string
	ContentType     string
	Metadata        map[string]string
}

// GetObject reads the live generation of an object directly from the backend (not counted).
// The error is fakestorage's when the object does not exist.
func (s *Server) GetObject(bucket, name string) (Object, error) {
	o, err := s.fake.GetObject(bucket, name)
	if err != nil {
		return Object{}, fmt.Errorf("emulator: get gs://%s/%s: %w", bucket, name, err)
	}
	return Object{
		Content:         o.Content,
		Generation:      o.Generation,
		ContentEncoding: o.ContentEncoding,
		ContentType:     o.ContentType,
		Metadata:        o.Metadata,
	}, nil
}

// ObjectNames lists the names of all live objects in bucket whose names start with prefix, in
// the order the backend returns them (sorted).
func (s *Server) ObjectNames(bucket, prefix string) ([]string, error) {
	objs, _, err := s.fake.ListObjectsWithOptions(bucket, fakestorage.ListOptions{Prefix: prefix})
	if err != nil {
		return nil, fmt.Errorf("emulator: list gs://%s/%s: %w", bucket, prefix, err)
	}
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.Name
	}
	return names, nil
}
