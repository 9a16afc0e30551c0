package par

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Node identity (design §4.8): par-node.a and par-node.b hold the node's
// name, a random node id, the cluster id and an incarnation number, each
// copy one checksummed 512-byte record written A (fdatasync) then B
// (fdatasync). The identity is written at a node's first start, after its
// peers confirmed they do not know the name (a wiped node whose name the
// cluster knows must not start as a fresh node), and a new incarnation is
// written by the lost-node procedure (RecoverLostNode).
const (
	NodeFileA = "par-node.a"
	NodeFileB = "par-node.b"

	nodeMagic   uint32 = 0x5041524e // "PARN"
	nodeVersion byte   = 1
	nodeSize           = 512
)

// Identity is one node's durable identity.
type Identity struct {
	Name        string
	NodeID      [16]byte // random, per incarnation
	ClusterID   [16]byte // ClusterID(initial cluster)
	Incarnation uint64   // 1 at first start, +1 per lost-node recovery
	CreatedAt   time.Time
	// PromoteAt is the leader commit index a recovering node must hold
	// before it asks to become a voter again; 0 when no promotion is
	// pending (design §4.8 step 4).
	PromoteAt uint64
}

// ClusterID derives the cluster id from the initial cluster (sorted
// name=address pairs), so every node of one cluster computes the same id
// without talking first.
func ClusterID(members []Peer) [16]byte {
	var parts []string
	for _, m := range members {
		parts = append(parts, m.Name+"="+m.Addr)
	}
	sort.Strings(parts)
	sum := sha256.Sum256([]byte(strings.Join(parts, ",")))
	var id [16]byte
	copy(id[:], sum[:])
	return id
}

func newNodeID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return id
}

// layout: magic u32 | ver u8 | incarnation u64 | createdAt i64 | promoteAt
// u64 | nodeID [16] | clusterID [16] | nameLen u16 | name | pad | crc32c u32
func (id Identity) encode() ([]byte, error) {
	if len(id.Name) > 256 {
		return nil, fmt.Errorf("%w: node name of %d bytes", ErrRecordTooLarge, len(id.Name))
	}
	b := make([]byte, nodeSize)
	binary.BigEndian.PutUint32(b, nodeMagic)
	b[4] = nodeVersion
	binary.BigEndian.PutUint64(b[5:], id.Incarnation)
	binary.BigEndian.PutUint64(b[13:], uint64(id.CreatedAt.UnixNano()))
	binary.BigEndian.PutUint64(b[21:], id.PromoteAt)
	copy(b[29:45], id.NodeID[:])
	copy(b[45:61], id.ClusterID[:])
	binary.BigEndian.PutUint16(b[61:], uint16(len(id.Name)))
	copy(b[63:], id.Name)
	binary.BigEndian.PutUint32(b[nodeSize-4:], crc(b[:nodeSize-4]))
	return b, nil
}

func decodeIdentity(b []byte) (Identity, bool) {
	if len(b) != nodeSize || binary.BigEndian.Uint32(b) != nodeMagic || b[4] != nodeVersion {
		return Identity{}, false
	}
	if binary.BigEndian.Uint32(b[nodeSize-4:]) != crc(b[:nodeSize-4]) {
		return Identity{}, false
	}
	n := int(binary.BigEndian.Uint16(b[61:]))
	if 63+n > nodeSize-4 {
		return Identity{}, false
	}
	id := Identity{
		Incarnation: binary.BigEndian.Uint64(b[5:]),
		CreatedAt:   time.Unix(0, int64(binary.BigEndian.Uint64(b[13:]))),
		PromoteAt:   binary.BigEndian.Uint64(b[21:]),
		Name:        string(b[63 : 63+n]),
	}
	copy(id.NodeID[:], b[29:45])
	copy(id.ClusterID[:], b[45:61])
	return id, true
}

// IdentityState is what LoadIdentity found.
type IdentityState int

const (
	IdentityMissing IdentityState = iota // neither copy exists
	IdentityValid                        // at least one copy verifies
	IdentityDamaged                      // files exist, none verifies
)

// LoadIdentity reads both copies; the higher incarnation wins (the copies
// differ only after a crash between the two writes). A damaged copy is
// rewritten from the good one.
func LoadIdentity(dir string, noSync bool) (Identity, IdentityState, error) {
	var best Identity
	var have, present int
	var bad []string
	for _, f := range []string{NodeFileA, NodeFileB} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if errors.Is(err, fs.ErrNotExist) {
			bad = append(bad, f)
			continue
		}
		present++
		id, ok := decodeIdentity(b)
		if err != nil || !ok {
			bad = append(bad, f)
			continue
		}
		if have == 0 || id.Incarnation > best.Incarnation ||
			(id.Incarnation == best.Incarnation && id.PromoteAt < best.PromoteAt) {
			best = id
		}
		have++
	}
	switch {
	case have == 0 && present == 0:
		return Identity{}, IdentityMissing, nil
	case have == 0:
		return Identity{}, IdentityDamaged, nil
	}
	for _, f := range bad {
		if err := writeIdentityCopy(filepath.Join(dir, f), best, noSync); err != nil {
			return best, IdentityValid, err
		}
	}
	return best, IdentityValid, nil
}

// WriteIdentity writes copy A then copy B, each fdatasync'ed.
func WriteIdentity(dir string, id Identity, noSync bool) error {
	if err := writeIdentityCopy(filepath.Join(dir, NodeFileA), id, noSync); err != nil {
		return err
	}
	return writeIdentityCopy(filepath.Join(dir, NodeFileB), id, noSync)
}

func writeIdentityCopy(path string, id Identity, noSync bool) error {
	b, err := id.encode()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	if err := f.Truncate(nodeSize); err != nil {
		return fmt.Errorf("write identity %s: %w", path, err)
	}
	if !noSync {
		if err := fdatasync(f); err != nil {
			return fmt.Errorf("sync identity %s: %w", path, err)
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// memberKey is the meta key under which a responder records a peer's
// identity (node id + incarnation) once that peer said Hello.
func memberKey(name string) []byte { return []byte("par.member." + name) }

func encodeMember(nodeID []byte, inc uint64) []byte {
	b := make([]byte, 0, 24)
	b = append(b, nodeID...)
	return binary.BigEndian.AppendUint64(b, inc)
}

func decodeMember(b []byte) (nodeID []byte, inc uint64, ok bool) {
	if len(b) != 24 {
		return nil, 0, false
	}
	return b[:16], binary.BigEndian.Uint64(b[16:]), true
}

// rememberMember durably records name's identity in the meta record; an
// older incarnation never overwrites a newer one.
func (s *StableStore) rememberMember(name string, nodeID []byte, inc uint64) error {
	old, err := s.Get(memberKey(name))
	if err == nil {
		if oid, oinc, ok := decodeMember(old); ok && (oinc > inc || (oinc == inc && bytes.Equal(oid, nodeID))) {
			return nil
		}
	} else if !errors.Is(err, errKeyNotFound) {
		return err
	}
	s.mu.Lock()
	used := 16
	for k, v := range s.rec.kv {
		if k != string(memberKey(name)) {
			used += 4 + len(k) + len(v)
		}
	}
	s.mu.Unlock()
	// Keep room for raft's own keys (a vote candidate address can grow):
	// a member record must never make raft's Set fail.
	if used+4+len(memberKey(name))+24 > metaSize-4-memberHeadroom {
		return fmt.Errorf("%w: no room to record member %s", ErrRecordTooLarge, name)
	}
	return s.Set(memberKey(name), encodeMember(nodeID, inc))
}

// memberHeadroom is the part of the 512-byte meta record member records
// never use, so raft's keys always fit.
const memberHeadroom = 160

// knownMember returns what this node recorded about name.
func (s *StableStore) knownMember(name string) (nodeID []byte, inc uint64, ok bool) {
	v, err := s.Get(memberKey(name))
	if err != nil {
		return nil, 0, false
	}
	return decodeMember(v)
}
