package transfer

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/plxfs/plxfs/internal/crc32c"
	"github.com/plxfs/plxfs/internal/posixmd"
	"github.com/plxfs/plxfs/store"
)

// MtimeKey is the user-metadata key holding a file's modification time in Unix seconds, as
// gsutil and gcloud storage write it. Uploads set it; downloads restore it (falling back to
// the object's Updated time).
const MtimeKey = posixmd.MtimeKey

// errRangeIgnored means a ranged read returned more bytes than asked: the server ignored the
// range (as GCS does for objects it transcodes), so ranged parts cannot be used.
var errRangeIgnored = errors.New("server ignored the byte range")

// Download fetches generation a.Generation of object a.Name (a as returned by Stat or List)
// into the local file dest, creating dest's directory if needed and replacing dest if it
// exists (callers decide whether that is wanted; DownloadFile and DownloadTree do).
//
// The bytes land in a temporary file next to dest (".<name>.plxfs-<random>.tmp"), are
// checked against the object's CRC32C (or MD5 when it has no CRC32C, or only its size when
// it has neither), fsynced, and only then renamed to dest; on any failure or cancellation the
// temporary file is removed, so dest is never left truncated. A process killed mid-download
// can leave the temporary file behind, never a partial dest.
//
// Objects bigger than opts.PartSize with a CRC32C are fetched as parallel ranged parts
// written in place; their CRCs are combined to check the whole. Objects with
// Content-Encoding gzip are decompressed into dest (unless opts.Raw) while the CRC32C of the
// stored bytes is checked, in one stream, since ranges of a compressed stream cannot be
// decompressed independently. A read cut short is resumed from where it stopped (up to 3
// attempts without progress); a server that ignores ranges is detected and the object is
// fetched as one stream instead.
func Download(ctx context.Context, b store.Bucket, a store.Attrs, dest string, opts Options) error {
	opts = opts.withDefaults()
	dir, base := filepath.Split(filepath.Clean(dest))
	if dir == "" {
		dir = "."
	}
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	defer root.Close()
	return downloadTo(ctx, b, a, root, base, opts)
}

// downloadTo is Download into root/rel; root confines every file operation.
func downloadTo(ctx context.Context, b store.Bucket, a store.Attrs, root *os.Root, rel string, opts Options) (err error) {
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o777); err != nil {
			return fmt.Errorf("download %q: create directory: %w", a.Name, err)
		}
	}
	tmp := tempName(rel)
	f, err := root.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
	if err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			root.Remove(tmp)
		}
	}()

	switch {
	case a.ContentEncoding == "gzip" && !opts.Raw:
		err = fetchGzip(ctx, b, a, f, opts)
	case a.Size > opts.PartSize && a.HasCRC32C:
		err = fetchParts(ctx, b, a, f, opts)
		if errors.Is(err, errRangeIgnored) || errors.Is(err, errChecksum) {
			opts.Logger.Debug("ranged download failed verification, refetching as one stream", "object", a.Name, "err", err)
			if err = f.Truncate(0); err == nil {
				err = fetchWhole(ctx, b, a, f, opts)
			}
		}
	default:
		err = fetchWhole(ctx, b, a, f, opts)
	}
	if err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("download %q: sync: %w", a.Name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("download %q: close: %w", a.Name, err)
	}
	if mt := mtimeOf(a); !mt.IsZero() {
		if err = root.Chtimes(tmp, mt, mt); err != nil {
			return fmt.Errorf("download %q: set mtime: %w", a.Name, err)
		}
	}
	if err = setPOSIX(root, tmp, posixmd.Parse(a.Metadata)); err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	if err = root.Rename(tmp, rel); err != nil {
		return fmt.Errorf("download %q: %w", a.Name, err)
	}
	return nil
}

// tempName is a hidden, unique name next to rel, short enough for a 255-byte limit.
func tempName(rel string) string {
	dir, base := filepath.Split(rel)
	const maxBase = 200
	if len(base) > maxBase {
		cut := maxBase
		for cut > 0 && !utf8.RuneStart(base[cut]) {
			cut--
		}
		base = base[:cut]
	}
	var r [8]byte
	_, _ = rand.Read(r[:])
	return dir + "." + base + ".plxfs-" + hex.EncodeToString(r[:]) + ".tmp"
}

// mtimeOf is the modification time to give a downloaded file: the one recorded in its metadata
// (gsutil's, plxfs's or rclone's key, see posixmd), else the object's update time.
func mtimeOf(a store.Attrs) time.Time {
	if mt := posixmd.Parse(a.Metadata).Mtime; !mt.IsZero() {
		return mt
	}
	return a.Updated
}

// setPOSIX gives a downloaded file the permission bits and, when running as root, the owner
// recorded with its object (as gsutil cp -P does: only root can give a file away).
func setPOSIX(root *os.Root, rel string, pa posixmd.Attrs) error {
	if pa.HasMode && pa.Type() == 0 {
		mode := os.FileMode(pa.Mode & 0o777)
		for bit, fm := range map[uint32]os.FileMode{0o4000: os.ModeSetuid, 0o2000: os.ModeSetgid, 0o1000: os.ModeSticky} {
			if pa.Mode&bit != 0 {
				mode |= fm
			}
		}
		if err := root.Chmod(rel, mode); err != nil {
			return fmt.Errorf("set mode: %w", err)
		}
	}
	if (pa.HasUID || pa.HasGID) && os.Geteuid() == 0 {
		uid, gid := -1, -1
		if pa.HasUID {
			uid = int(pa.UID)
		}
		if pa.HasGID {
			gid = int(pa.GID)
		}
		if err := root.Lchown(rel, uid, gid); err != nil {
			return fmt.Errorf("set owner: %w", err)
		}
	}
	return nil
}

// errChecksum marks a verification failure of downloaded bytes.
var errChecksum = errors.New("checksum mismatch")

// fetchWhole reads the whole object in one stream into f, checking CRC32C or MD5.
func fetchWhole(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, opts Options) error {
	if err := opts.acquire(ctx); err != nil {
		return err
	}
	defer opts.slots.Release(1)
	var h hash.Hash
	switch {
	case a.HasCRC32C:
		h = crc32.New(crc32c.Table)
	case len(a.MD5) > 0:
		h = md5.New()
	default:
		opts.Logger.Debug("object has no checksum; checking its size only", "object", a.Name)
	}
	if err := fetchRange(ctx, b, a, f, 0, a.Size, h, opts); err != nil {
		return err
	}
	switch {
	case a.HasCRC32C:
		if got := h.(hash.Hash32).Sum32(); got != a.CRC32C {
			return fmt.Errorf("%w: CRC32C %08x, object has %08x", errChecksum, got, a.CRC32C)
		}
	case len(a.MD5) > 0:
		if got := h.Sum(nil); !bytes.Equal(got, a.MD5) {
			return fmt.Errorf("%w: MD5 %x, object has %x", errChecksum, got, a.MD5)
		}
	}
	return nil
}

// fetchParts reads the object as parallel ranged parts of opts.PartSize written in place.
func fetchParts(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, opts Options) error {
	if err := f.Truncate(a.Size); err != nil {
		return err
	}
	n := int((a.Size + opts.PartSize - 1) / opts.PartSize)
	crcs := make([]uint32, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(opts.Workers)
	for i := range n {
		off := int64(i) * opts.PartSize
		size := min(opts.PartSize, a.Size-off)
		g.Go(func() error {
			if err := opts.acquire(gctx); err != nil {
				return err
			}
			defer opts.slots.Release(1)
			h := crc32.New(crc32c.Table)
			if err := fetchRange(gctx, b, a, f, off, size, h, opts); err != nil {
				return fmt.Errorf("bytes %d-%d: %w", off, off+size-1, err)
			}
			crcs[i] = h.Sum32()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var crc uint32
	for i, c := range crcs {
		crc = crc32c.Combine(crc, c, min(opts.PartSize, a.Size-int64(i)*opts.PartSize))
	}
	if crc != a.CRC32C {
		return fmt.Errorf("%w: CRC32C %08x, object has %08x", errChecksum, crc, a.CRC32C)
	}
	return nil
}

// fetchRange copies bytes [off, off+n) of the object into f at the same offsets, feeding h
// (if not nil) in order. A stream that breaks or ends early is resumed where it stopped;
// maxAttempts consecutive attempts without progress give up.
func fetchRange(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, off, n int64, h hash.Hash, opts Options) error {
	var done int64
	buf := make([]byte, 64<<10)
	for attempt := 0; ; attempt++ {
		got, err := readInto(ctx, b, a, f, off+done, n-done, h, buf, opts)
		done += got
		if err == nil && done == n {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("stream ended after %d of %d bytes: %w", done, n, io.ErrUnexpectedEOF)
		}
		if got > 0 {
			attempt = 0
		}
		if errors.Is(err, errRangeIgnored) || !restartable(ctx, err) || attempt+1 >= maxAttempts {
			return err
		}
		opts.Logger.Debug("resuming read", "object", a.Name, "offset", off+done, "err", err)
	}
}

// readInto makes one ranged read of [off, off+n) into f, returning the bytes written.
func readInto(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, off, n int64, h hash.Hash, buf []byte, opts Options) (int64, error) {
	if n == 0 {
		return 0, nil
	}
	r, err := b.NewRangeReader(ctx, a.Name, a.Generation, off, n)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	var w io.Writer = io.NewOffsetWriter(f, off)
	if h != nil {
		w = io.MultiWriter(w, h)
	}
	got, err := io.CopyBuffer(w, &countingReader{r: io.LimitReader(r, n), report: opts.Progress.Bytes}, buf)
	if err != nil || got < n {
		return got, err
	}
	var one [1]byte
	if k, _ := io.ReadFull(r, one[:]); k > 0 {
		return got, errRangeIgnored
	}
	return got, nil
}

// fetchGzip reads the stored (gzip) bytes in one stream, decompresses them into f and checks
// the stored bytes' CRC32C/MD5 and size. A failed stream restarts from the beginning.
func fetchGzip(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, opts Options) error {
	if err := opts.acquire(ctx); err != nil {
		return err
	}
	defer opts.slots.Release(1)
	var err error
	for attempt := range maxAttempts {
		if attempt > 0 {
			opts.Logger.Debug("restarting gzip download", "object", a.Name, "err", err)
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				return err
			}
			if err := f.Truncate(0); err != nil {
				return err
			}
		}
		if err = gunzipOnce(ctx, b, a, f, opts); err == nil || !restartable(ctx, err) || errors.Is(err, errChecksum) {
			return err
		}
	}
	return err
}

func gunzipOnce(ctx context.Context, b store.Bucket, a store.Attrs, f *os.File, opts Options) error {
	r, err := b.NewRangeReader(ctx, a.Name, a.Generation, 0, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	crc, sum := crc32.New(crc32c.Table), md5.New()
	var n int64 // stored bytes read
	stored := &countingReader{r: io.TeeReader(r, io.MultiWriter(crc, sum)), report: func(k int64) {
		n += k
		opts.Progress.Bytes(k)
	}}
	zr, err := gzip.NewReader(stored)
	if err != nil {
		return fmt.Errorf("object has Content-Encoding gzip but is not gzip data (use raw mode to keep its bytes): %w", err)
	}
	if _, err := io.Copy(f, zr); err != nil {
		return fmt.Errorf("decompress: %w", err)
	}
	if _, err := io.Copy(io.Discard, stored); err != nil { // trailing bytes still count for the checksum
		return err
	}
	switch {
	case n != a.Size:
		return fmt.Errorf("%w: read %d stored bytes, object has %d", errChecksum, n, a.Size)
	case a.HasCRC32C && crc.Sum32() != a.CRC32C:
		return fmt.Errorf("%w: CRC32C %08x of stored bytes, object has %08x", errChecksum, crc.Sum32(), a.CRC32C)
	case !a.HasCRC32C && len(a.MD5) > 0 && !bytes.Equal(sum.Sum(nil), a.MD5):
		return fmt.Errorf("%w: MD5 of stored bytes %x, object has %x", errChecksum, sum.Sum(nil), a.MD5)
	}
	return nil
}
