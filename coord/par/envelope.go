package par

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/hashicorp/raft"
)

// The envelope is the value par stores in bolt for each raft entry:
//
//	magic u32 | ver u8 | index u64 | term u64 | type u8 | appendedAt i64 |
//	len(data) u32 | data | len(ext) u32 | ext | crc32c u32
//
// The CRC32C covers every byte before it, index and term included, so a
// valid envelope written at another index (a misdirected write) fails.
const (
	envMagic   uint32 = 0x50415231 // "PAR1"
	envVersion byte   = 1
	envHeader         = 4 + 1 + 8 + 8 + 1 + 8 // magic..appendedAt
	envMinLen         = envHeader + 4 + 4 + 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// envelopeLen is the length of l's envelope.
func envelopeLen(l *raft.Log) int { return envMinLen + len(l.Data) + len(l.Extensions) }

// encodeEnvelope returns the canonical bytes of l and their checksum.
func encodeEnvelope(l *raft.Log) ([]byte, uint32) {
	b := make([]byte, envelopeLen(l))
	return b, encodeEnvelopeTo(b, l)
}

// encodeEnvelopeTo writes l's envelope into b, exactly envelopeLen(l)
// bytes, and returns its checksum.
func encodeEnvelopeTo(b []byte, l *raft.Log) uint32 {
	binary.BigEndian.PutUint32(b[0:], envMagic)
	b[4] = envVersion
	binary.BigEndian.PutUint64(b[5:], l.Index)
	binary.BigEndian.PutUint64(b[13:], l.Term)
	b[21] = byte(l.Type)
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	binary.BigEndian.PutUint64(b[22:], uint64(at))
	p := envHeader
	binary.BigEndian.PutUint32(b[p:], uint32(len(l.Data)))
	p += 4
	p += copy(b[p:], l.Data)
	binary.BigEndian.PutUint32(b[p:], uint32(len(l.Extensions)))
	p += 4
	p += copy(b[p:], l.Extensions)
	c := crc(b[:p])
	binary.BigEndian.PutUint32(b[p:], c)
	return c
}

// decodeEnvelope parses and verifies b. It returns the entry and the
// checksum; any damage is an error wrapping ErrBadEnvelope.
func decodeEnvelope(b []byte) (*raft.Log, uint32, error) {
	if len(b) < envMinLen {
		return nil, 0, fmt.Errorf("%w: %d bytes is too short", ErrBadEnvelope, len(b))
	}
	if binary.BigEndian.Uint32(b) != envMagic {
		return nil, 0, fmt.Errorf("%w: bad magic", ErrBadEnvelope)
	}
	if b[4] != envVersion {
		return nil, 0, fmt.Errorf("%w: version %d", ErrBadEnvelope, b[4])
	}
	p := envHeader
	dl := int(binary.BigEndian.Uint32(b[p:]))
	p += 4
	if dl < 0 || p+dl+8 > len(b) {
		return nil, 0, fmt.Errorf("%w: data length %d out of range", ErrBadEnvelope, dl)
	}
	data := b[p : p+dl]
	p += dl
	el := int(binary.BigEndian.Uint32(b[p:]))
	p += 4
	if el < 0 || p+el+4 != len(b) {
		return nil, 0, fmt.Errorf("%w: extension length %d out of range", ErrBadEnvelope, el)
	}
	ext := b[p : p+el]
	p += el
	want := binary.BigEndian.Uint32(b[p:])
	if got := crc(b[:p]); got != want {
		return nil, 0, fmt.Errorf("%w: checksum %08x, want %08x", ErrBadEnvelope, got, want)
	}
	l := &raft.Log{
		Index: binary.BigEndian.Uint64(b[5:]),
		Term:  binary.BigEndian.Uint64(b[13:]),
		Type:  raft.LogType(b[21]),
	}
	if at := int64(binary.BigEndian.Uint64(b[22:])); at != 0 {
		l.AppendedAt = time.Unix(0, at)
	}
	if dl > 0 {
		l.Data = append([]byte(nil), data...)
	}
	if el > 0 {
		l.Extensions = append([]byte(nil), ext...)
	}
	return l, want, nil
}
