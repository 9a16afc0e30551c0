package par

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"sync"

	"github.com/hashicorp/raft"
)

// The term/vote record lives in two files, par-meta.a and par-meta.b, each
// one 512-byte sector:
//
//	magic u32 | ver u8 | flags u8 | seq u64 | n u16 | n × (klen u16 | key | vlen u16 | val) | pad | crc32c u32
//
// A write updates A (fdatasync) and then B (fdatasync), so a crash leaves
// at most one copy torn or stale.
const (
	metaMagic   uint32 = 0x5041524d // "PARM"
	metaVersion byte   = 1
	metaSize           = 512

	flagQuarantine byte = 1
)

// SentinelCandidate is the vote par records after amnesia recovery: no
// real server has this id, so raft grants no vote in that term.
var SentinelCandidate = []byte("\x00par-sentinel")

var keyLastVoteTerm = []byte("LastVoteTerm")

type metaRecord struct {
	flags byte
	seq   uint64
	kv    map[string][]byte
}

func (m metaRecord) encode() ([]byte, error) {
	b := make([]byte, metaSize)
	binary.BigEndian.PutUint32(b, metaMagic)
	b[4] = metaVersion
	b[5] = m.flags
	binary.BigEndian.PutUint64(b[6:], m.seq)
	keys := make([]string, 0, len(m.kv))
	for k := range m.kv {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	binary.BigEndian.PutUint16(b[14:], uint16(len(keys)))
	p := 16
	for _, k := range keys {
		v := m.kv[k]
		if p+4+len(k)+len(v) > metaSize-4 {
			return nil, fmt.Errorf("%w: %d keys do not fit %d bytes", ErrRecordTooLarge, len(keys), metaSize)
		}
		binary.BigEndian.PutUint16(b[p:], uint16(len(k)))
		p += 2 + copy(b[p+2:], k)
		binary.BigEndian.PutUint16(b[p:], uint16(len(v)))
		p += 2 + copy(b[p+2:], v)
	}
	binary.BigEndian.PutUint32(b[metaSize-4:], crc(b[:metaSize-4]))
	return b, nil
}

func decodeMeta(b []byte) (metaRecord, bool) {
	if len(b) != metaSize || binary.BigEndian.Uint32(b) != metaMagic || b[4] != metaVersion {
		return metaRecord{}, false
	}
	if binary.BigEndian.Uint32(b[metaSize-4:]) != crc(b[:metaSize-4]) {
		return metaRecord{}, false
	}
	m := metaRecord{flags: b[5], seq: binary.BigEndian.Uint64(b[6:]), kv: map[string][]byte{}}
	n := int(binary.BigEndian.Uint16(b[14:]))
	p := 16
	for i := 0; i < n; i++ {
		if p+2 > metaSize-4 {
			return metaRecord{}, false
		}
		kl := int(binary.BigEndian.Uint16(b[p:]))
		p += 2
		if p+kl+2 > metaSize-4 {
			return metaRecord{}, false
		}
		k := string(b[p : p+kl])
		p += kl
		vl := int(binary.BigEndian.Uint16(b[p:]))
		p += 2
		if p+vl > metaSize-4 {
			return metaRecord{}, false
		}
		m.kv[k] = append([]byte(nil), b[p:p+vl]...)
		p += vl
	}
	return m, true
}

// CopyState is the state of one meta copy at load.
type CopyState int

const (
	CopyValid   CopyState = iota
	CopyInvalid           // present but failing its checksum or format
	CopyMissing           // no file
)

// LoadAction is what loading the two copies decides (design §4.5 table).
type LoadAction int

const (
	LoadUseA     LoadAction = iota // both valid, same seq, or A newer
	LoadUseB                       // B newer, or only B valid
	LoadFresh                      // nothing anywhere: a new node
	LoadAmnesia                    // raft data exists but no valid copy
	LoadUseAFixB                   // A valid, B invalid/missing/stale: rewrite B
	LoadUseBFixA                   // B valid, A invalid/missing/stale: rewrite A
)

// DecideLoad is the pure load table. seqA/seqB matter only for valid
// copies; hasRaftData reports whether any log, identifier or snapshot exists.
func DecideLoad(a, b CopyState, seqA, seqB uint64, hasRaftData bool) LoadAction {
	switch {
	case a == CopyValid && b == CopyValid:
		switch {
		case seqA == seqB:
			return LoadUseA
		case seqA > seqB:
			return LoadUseAFixB
		default:
			return LoadUseBFixA
		}
	case a == CopyValid:
		return LoadUseAFixB
	case b == CopyValid:
		return LoadUseBFixA
	case a == CopyMissing && b == CopyMissing && !hasRaftData:
		return LoadFresh
	default:
		return LoadAmnesia
	}
}

// StableStore is a raft.StableStore keeping every key in one record stored
// twice. It is not delegated to bbolt, so term and vote survive the loss of
// raft.db.
type StableStore struct {
	pathA, pathB string
	noSync       bool

	mu       sync.Mutex
	rec      metaRecord
	amnesic  bool
	degraded bool // one copy could not be written or was repaired at load
}

var _ raft.StableStore = (*StableStore)(nil)

// openStable loads the two copies. hasRaftData decides between a fresh node
// and amnesia when neither copy is valid.
func openStable(pathA, pathB string, hasRaftData, noSync bool) (*StableStore, error) {
	s := &StableStore{pathA: pathA, pathB: pathB, noSync: noSync, rec: metaRecord{kv: map[string][]byte{}}}
	ra, sa, err := readCopy(pathA)
	if err != nil {
		return nil, err
	}
	rb, sb, err := readCopy(pathB)
	if err != nil {
		return nil, err
	}
	switch DecideLoad(sa, sb, ra.seq, rb.seq, hasRaftData) {
	case LoadUseA:
		s.rec = ra
	case LoadUseB:
		s.rec = rb
	case LoadUseAFixB:
		s.rec = ra
		s.degraded = sb != CopyValid
		err = s.writeCopy(pathB, ra)
	case LoadUseBFixA:
		s.rec = rb
		s.degraded = sa != CopyValid
		err = s.writeCopy(pathA, rb)
	case LoadFresh:
	case LoadAmnesia:
		s.amnesic = true
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readCopy reads one copy; a read error other than "missing" is reported
// as an invalid copy (EIO and corruption take one path).
func readCopy(path string) (metaRecord, CopyState, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return metaRecord{}, CopyMissing, nil
	}
	if err != nil {
		return metaRecord{}, CopyInvalid, nil
	}
	m, ok := decodeMeta(b)
	if !ok {
		return metaRecord{}, CopyInvalid, nil
	}
	return m, CopyValid, nil
}

func (s *StableStore) writeCopy(path string, m metaRecord) error {
	b, err := m.encode()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Truncate(metaSize); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if !s.noSync {
		if err := fdatasync(f); err != nil {
			return fmt.Errorf("sync %s: %w", path, err)
		}
	}
	return nil
}

// Amnesic reports whether both copies were lost while raft data exists.
func (s *StableStore) Amnesic() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.amnesic
}

// Degraded reports whether a copy was repaired at load or failed a write.
func (s *StableStore) Degraded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.degraded
}

// commit writes next to A then B; it succeeds if at least one copy lands.
func (s *StableStore) commit(next metaRecord) error {
	next.seq = s.rec.seq + 1
	errA := s.writeCopy(s.pathA, next)
	errB := s.writeCopy(s.pathB, next)
	if errA != nil && errB != nil {
		return errors.Join(errA, errB)
	}
	if errA != nil || errB != nil {
		s.degraded = true
	}
	s.rec = next
	return nil
}

func (s *StableStore) clone() metaRecord {
	kv := make(map[string][]byte, len(s.rec.kv)+1)
	for k, v := range s.rec.kv {
		kv[k] = v
	}
	return metaRecord{flags: s.rec.flags, seq: s.rec.seq, kv: kv}
}

// Set stores key=val in both copies.
func (s *StableStore) Set(key, val []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.amnesic {
		return ErrAmnesia
	}
	if string(key) == "LastVoteCand" { // raft's persistVote writes the term first
		defer func() {
			if v := s.rec.kv["LastVoteTerm"]; len(v) == 8 && bytes.Equal(s.rec.kv["LastVoteCand"], val) {
				s.traceVote(binary.BigEndian.Uint64(v), val)
			}
		}()
	}
	if old, ok := s.rec.kv[string(key)]; ok && bytes.Equal(old, val) {
		return nil
	}
	next := s.clone()
	next.kv[string(key)] = append([]byte(nil), val...)
	return s.commit(next)
}

// Get returns key's value; a missing key on a sane node is "not found".
func (s *StableStore) Get(key []byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.amnesic {
		return nil, ErrAmnesia
	}
	v, ok := s.rec.kv[string(key)]
	if !ok {
		return nil, errKeyNotFound
	}
	return append([]byte(nil), v...), nil
}

// SetUint64 stores a big-endian uint64.
func (s *StableStore) SetUint64(key []byte, val uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], val)
	return s.Set(key, b[:])
}

// GetUint64 reads a uint64. While votes are quarantined, LastVoteTerm
// fails, which makes raft refuse every vote.
func (s *StableStore) GetUint64(key []byte) (uint64, error) {
	s.mu.Lock()
	q := s.rec.flags&flagQuarantine != 0
	s.mu.Unlock()
	if q && bytes.Equal(key, keyLastVoteTerm) {
		return 0, ErrVoteQuarantined
	}
	v, err := s.Get(key)
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("par: key %q holds %d bytes, want 8", key, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

// SetQuarantine sets or clears the vote-quarantine flag durably.
func (s *StableStore) SetQuarantine(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.clone()
	if on {
		next.flags |= flagQuarantine
	} else {
		next.flags &^= flagQuarantine
	}
	return s.commit(next)
}

// recoverAmnesia writes term = vote term = m with the sentinel candidate,
// after every other voter reported its durable term (max m). The node then
// refuses every vote in m and can vote only in terms above it.
func (s *StableStore) recoverAmnesia(m uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], m)
	next := metaRecord{kv: map[string][]byte{
		"CurrentTerm":  append([]byte(nil), b[:]...),
		"LastVoteTerm": append([]byte(nil), b[:]...),
		"LastVoteCand": append([]byte(nil), SentinelCandidate...),
	}}
	if err := s.commit(next); err != nil {
		return err
	}
	s.traceVote(m, SentinelCandidate)
	s.amnesic = false
	return nil
}

// DurableTerm is the persisted CurrentTerm (0 if none); ok is false when
// amnesic.
func (s *StableStore) DurableTerm() (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.amnesic {
		return 0, false
	}
	v, ok := s.rec.kv["CurrentTerm"]
	if !ok || len(v) != 8 {
		return 0, true
	}
	return binary.BigEndian.Uint64(v), true
}
