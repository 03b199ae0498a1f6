package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path/filepath"
	"strconv"
	"strings"
)

// layoutVersion names the directory under Options.Dir that holds chunk files. A change to the
// file format or the naming scheme gets a new directory; files of other versions are ignored.
const layoutVersion = "v1"

// headerMagic starts every chunk file.
var headerMagic = [8]byte{'P', 'L', 'X', 'C', 'H', 'U', 'N', 'K'}

const (
	formatVersion = 1
	// fixedHeaderLen is the header size before the bucket and name bytes.
	fixedHeaderLen = 60
	// maxNameLen bounds the bucket and name lengths accepted when decoding a header, so a
	// damaged length field cannot make re-indexing allocate gigabytes. GCS allows 1,024-byte
	// names; the emulator accepts longer ones, hence the margin.
	maxNameLen = 64 << 10
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// key identifies one cached unit of object bytes: bytes [Index*Unit, Index*Unit+Unit) of one
// generation of one object (shorter at the end of the object). Unit is part of the identity so
// that chunks written with another ChunkSize, and the small blocks random reads use, never
// alias each other.
type key struct {
	Bucket string
	Name   string
	Gen    int64
	Unit   int64
	Index  int64
}

func (k key) off() int64 { return k.Index * k.Unit }

// length is the number of bytes the unit holds in an object of size size.
func (k key) length(size int64) int64 { return min(k.Unit, size-k.off()) }

// id is a stable, collision-resistant name for k: hex SHA-256 of an unambiguous encoding.
func (k key) id() string {
	h := sha256.New()
	var b [8]byte
	for _, s := range []string{k.Bucket, k.Name} {
		binary.LittleEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		io.WriteString(h, s)
	}
	for _, v := range []int64{k.Gen, k.Unit, k.Index} {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// flightKey is the singleflight key for fetching k.
func (k key) flightKey() string { return "f" + k.id() }

// chunkPath is the path of one fill of k: Dir/v1/<first 2 hex of id>/<id>.<fill>. The fill
// number makes every fill's path unique, so removing an evicted or replaced fill never removes a
// newer file of the same key.
func chunkPath(root string, k key, fill uint64) string {
	id := k.id()
	return filepath.Join(root, layoutVersion, id[:2], id+"."+strconv.FormatUint(fill, 16))
}

// parseChunkName splits a chunk file name into its key id and fill number.
func parseChunkName(base string) (id string, fill uint64, ok bool) {
	id, f, found := strings.Cut(base, ".")
	if !found || len(id) != 64 || len(f) == 0 || len(f) > 16 {
		return "", 0, false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", 0, false
	}
	fill, err := strconv.ParseUint(f, 16, 64)
	if err != nil {
		return "", 0, false
	}
	return id, fill, true
}

// header is the self-description at the start of every chunk file:
//
//	off len  field
//	0   8    magic "PLXCHUNK"
//	8   4    format version (1)
//	12  4    header length H, including the bucket, the name and the trailing header CRC
//	16  8    generation
//	24  8    unit (bytes)
//	32  8    index
//	40  8    data length
//	48  4    CRC32C (Castagnoli) of the data
//	52  4    bucket length B
//	56  4    name length N
//	60  B    bucket
//	60+B N   name
//	H-4 4    CRC32C of header bytes [0, H-4)
//	H   ...  data
//
// All integers are little-endian.
type header struct {
	key     key
	dataLen int64
	dataCRC uint32
}

func (h header) size() int64 { return int64(fixedHeaderLen + len(h.key.Bucket) + len(h.key.Name) + 4) }

func (h header) encode() []byte {
	n := h.size()
	b := make([]byte, n)
	copy(b[0:8], headerMagic[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], formatVersion)
	le.PutUint32(b[12:], uint32(n))
	le.PutUint64(b[16:], uint64(h.key.Gen))
	le.PutUint64(b[24:], uint64(h.key.Unit))
	le.PutUint64(b[32:], uint64(h.key.Index))
	le.PutUint64(b[40:], uint64(h.dataLen))
	le.PutUint32(b[48:], h.dataCRC)
	le.PutUint32(b[52:], uint32(len(h.key.Bucket)))
	le.PutUint32(b[56:], uint32(len(h.key.Name)))
	copy(b[fixedHeaderLen:], h.key.Bucket)
	copy(b[fixedHeaderLen+len(h.key.Bucket):], h.key.Name)
	le.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], castagnoli))
	return b
}

var errBadHeader = errors.New("damaged chunk header")

// readHeader decodes and checks the header at the start of r.
func readHeader(r io.ReaderAt) (header, error) {
	var fixed [fixedHeaderLen]byte
	if _, err := r.ReadAt(fixed[:], 0); err != nil {
		return header{}, fmt.Errorf("%w: %v", errBadHeader, err)
	}
	le := binary.LittleEndian
	if [8]byte(fixed[0:8]) != headerMagic {
		return header{}, fmt.Errorf("%w: bad magic", errBadHeader)
	}
	if v := le.Uint32(fixed[8:]); v != formatVersion {
		return header{}, fmt.Errorf("%w: format version %d", errBadHeader, v)
	}
	bl, nl := int64(le.Uint32(fixed[52:])), int64(le.Uint32(fixed[56:]))
	if bl > maxNameLen || nl > maxNameLen {
		return header{}, fmt.Errorf("%w: name length out of range", errBadHeader)
	}
	n := fixedHeaderLen + bl + nl + 4
	if int64(le.Uint32(fixed[12:])) != n {
		return header{}, fmt.Errorf("%w: header length mismatch", errBadHeader)
	}
	b := make([]byte, n)
	copy(b, fixed[:])
	if _, err := r.ReadAt(b[fixedHeaderLen:], fixedHeaderLen); err != nil {
		return header{}, fmt.Errorf("%w: %v", errBadHeader, err)
	}
	if crc32.Checksum(b[:n-4], castagnoli) != le.Uint32(b[n-4:]) {
		return header{}, fmt.Errorf("%w: header checksum mismatch", errBadHeader)
	}
	h := header{
		key: key{
			Gen:    int64(le.Uint64(b[16:])),
			Unit:   int64(le.Uint64(b[24:])),
			Index:  int64(le.Uint64(b[32:])),
			Bucket: string(b[fixedHeaderLen : fixedHeaderLen+bl]),
			Name:   string(b[fixedHeaderLen+bl : fixedHeaderLen+bl+nl]),
		},
		dataLen: int64(le.Uint64(b[40:])),
		dataCRC: le.Uint32(b[48:]),
	}
	if h.key.Unit <= 0 || h.key.Index < 0 || h.dataLen <= 0 || h.dataLen > h.key.Unit {
		return header{}, fmt.Errorf("%w: unit %d index %d length %d out of range",
			errBadHeader, h.key.Unit, h.key.Index, h.dataLen)
	}
	return h, nil
}
