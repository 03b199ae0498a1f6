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
	"strings"

	"github.com/plxfs/plxfs/internal/crc32c"
)

// layoutVersion names the directory under Options.Dir that holds object files. A change to the
// file format or the naming scheme gets a new directory; Open removes the directories of older
// versions (v1 held one file per chunk).
const layoutVersion = "v2"

// oldLayouts are directories of earlier versions, removed at Open.
var oldLayouts = []string{"v1"}

// headerMagic starts every index file.
var headerMagic = [8]byte{'P', 'L', 'X', 'O', 'B', 'J', 'I', 'X'}

const (
	formatVersion = 2
	// fixedHeaderLen is the header size before the bucket and name bytes.
	fixedHeaderLen = 64
	// recordLen is the size of one unit's record in an index file.
	recordLen = 16
	// maxNameLen bounds the bucket and name lengths accepted when decoding a header, so a
	// damaged length field cannot make re-indexing allocate gigabytes. GCS allows 1,024-byte
	// names; the emulator accepts longer ones, hence the margin.
	maxNameLen = 64 << 10
)

// key identifies one cached unit of object bytes: bytes [Index*Unit, Index*Unit+Unit) of one
// generation of one object (shorter at the end of the object). Unit is part of the identity so
// that whole chunks and the small blocks random reads use are told apart.
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

func (k key) object() objectID { return objectID{k.Bucket, k.Name, k.Gen} }

// id is a stable, collision-resistant name for k: hex SHA-256 of an unambiguous encoding.
func (k key) id() string {
	return hashID([]string{k.Bucket, k.Name}, []int64{k.Gen, k.Unit, k.Index})
}

// flightKey is the singleflight key for filling k.
func (k key) flightKey() string { return "f" + k.id() }

// fileID names the files of one object generation: hex SHA-256 of an unambiguous encoding.
func (o objectID) fileID() string { return hashID([]string{o.bucket, o.name}, []int64{o.gen}) }

// hashID hashes length-prefixed strings and fixed-width integers, so no two inputs collide.
func hashID(strs []string, ints []int64) string {
	h := sha256.New()
	var b [8]byte
	for _, s := range strs {
		binary.LittleEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		io.WriteString(h, s)
	}
	for _, v := range ints {
		binary.LittleEndian.PutUint64(b[:], uint64(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// objectPaths returns the data and index file paths of one object generation:
// Dir/v2/<first 2 hex of id>/<id>.data and .idx.
func objectPaths(root, fileID string) (data, idx string) {
	base := filepath.Join(root, layoutVersion, fileID[:2], fileID)
	return base + ".data", base + ".idx"
}

// parseObjectName splits an object file name into its id and suffix (".data" or ".idx").
func parseObjectName(base string) (id, suffix string, ok bool) {
	id, suffix, found := strings.Cut(base, ".")
	if !found || (suffix != "data" && suffix != "idx") || len(id) != 64 {
		return "", "", false
	}
	if _, err := hex.DecodeString(id); err != nil || strings.ToLower(id) != id {
		return "", "", false
	}
	return id, suffix, true
}

// header is the self-description at the start of every index file:
//
//	off len  field
//	0   8    magic "PLXOBJIX"
//	8   4    format version (2)
//	12  4    header length H, including the bucket, the name and the trailing header CRC
//	16  8    generation
//	24  8    object size
//	32  8    chunk unit (bytes)
//	40  8    block unit (bytes)
//	48  4    bucket length B
//	52  4    name length N
//	56  8    reserved (zero)
//	64  B    bucket
//	64+B N   name
//	H-4 4    CRC32C of header bytes [0, H-4)
//	H   ...  one 16-byte record per unit slot (see record)
//
// All integers are little-endian.
type header struct {
	obj        objectID
	size       int64
	chunk, blk int64
}

func (h header) len() int64 { return int64(fixedHeaderLen + len(h.obj.bucket) + len(h.obj.name) + 4) }

// slots is the number of unit records: every chunk, then every block.
func (h header) slots() int64 { return ceilDiv(h.size, h.chunk) + ceilDiv(h.size, h.blk) }

// slot is the record index of unit k.
func (h header) slot(k key) int64 {
	if k.Unit == h.chunk {
		return k.Index
	}
	return ceilDiv(h.size, h.chunk) + k.Index
}

// unitOf is the inverse of slot.
func (h header) unitOf(slot int64) key {
	k := key{Bucket: h.obj.bucket, Name: h.obj.name, Gen: h.obj.gen, Unit: h.chunk, Index: slot}
	if n := ceilDiv(h.size, h.chunk); slot >= n {
		k.Unit, k.Index = h.blk, slot-n
	}
	return k
}

func (h header) recordOff(k key) int64 { return h.len() + h.slot(k)*recordLen }

func ceilDiv(a, b int64) int64 { return (a + b - 1) / b }

func (h header) encode() []byte {
	n := h.len()
	b := make([]byte, n)
	copy(b[0:8], headerMagic[:])
	le := binary.LittleEndian
	le.PutUint32(b[8:], formatVersion)
	le.PutUint32(b[12:], uint32(n))
	le.PutUint64(b[16:], uint64(h.obj.gen))
	le.PutUint64(b[24:], uint64(h.size))
	le.PutUint64(b[32:], uint64(h.chunk))
	le.PutUint64(b[40:], uint64(h.blk))
	le.PutUint32(b[48:], uint32(len(h.obj.bucket)))
	le.PutUint32(b[52:], uint32(len(h.obj.name)))
	copy(b[fixedHeaderLen:], h.obj.bucket)
	copy(b[fixedHeaderLen+len(h.obj.bucket):], h.obj.name)
	le.PutUint32(b[n-4:], crc32.Checksum(b[:n-4], crc32c.Table))
	return b
}

var errBadHeader = errors.New("damaged index header")

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
	bl, nl := int64(le.Uint32(fixed[48:])), int64(le.Uint32(fixed[52:]))
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
	if crc32.Checksum(b[:n-4], crc32c.Table) != le.Uint32(b[n-4:]) {
		return header{}, fmt.Errorf("%w: header checksum mismatch", errBadHeader)
	}
	h := header{
		obj: objectID{
			bucket: string(b[fixedHeaderLen : fixedHeaderLen+bl]),
			name:   string(b[fixedHeaderLen+bl : fixedHeaderLen+bl+nl]),
			gen:    int64(le.Uint64(b[16:])),
		},
		size:  int64(le.Uint64(b[24:])),
		chunk: int64(le.Uint64(b[32:])),
		blk:   int64(le.Uint64(b[40:])),
	}
	if h.size <= 0 || h.chunk <= 0 || h.blk <= 0 || h.obj.gen <= 0 {
		return header{}, fmt.Errorf("%w: size %d, units %d/%d, generation %d out of range",
			errBadHeader, h.size, h.chunk, h.blk, h.obj.gen)
	}
	return h, nil
}

// record is one unit's entry in an index file:
//
//	off len  field
//	0   4    CRC32C of the unit's data
//	4   8    fill sequence number (recency across restarts; never 0 in a valid record)
//	12  4    CRC32C of bytes [0, 12), xor recordSeal
//
// A unit is cached when its record is valid; a zeroed or torn record is not.
type record struct {
	dataCRC uint32
	seq     uint64
}

// recordSeal keeps an all-zero record from being valid.
const recordSeal = 0x504c5852

func (r record) encode() []byte {
	b := make([]byte, recordLen)
	binary.LittleEndian.PutUint32(b[0:], r.dataCRC)
	binary.LittleEndian.PutUint64(b[4:], r.seq)
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[:12], crc32c.Table)^recordSeal)
	return b
}

func decodeRecord(b []byte) (record, bool) {
	le := binary.LittleEndian
	if crc32.Checksum(b[:12], crc32c.Table)^recordSeal != le.Uint32(b[12:]) {
		return record{}, false
	}
	r := record{dataCRC: le.Uint32(b[0:]), seq: le.Uint64(b[4:])}
	return r, r.seq != 0
}
