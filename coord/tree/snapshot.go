package tree

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"

	iradix "coord/coord/tree/internal/radix"
	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

// Snapshot stream format (format 4; formats 3 and 2 are read too: format 3
// had no session owners or user generations, so its sessions are legacy
// sessions anyone may use; format 2 also had no ACLs, so its nodes are open):
//
//	magic      "COORDTREE\n"
//	records    type (1 byte), payload length (4 bytes, big-endian), payload
//	  recHeader   SnapshotHeader: format, zxid, node and session counts; first
//	  recNode     SnapshotNode, one per znode, paths strictly ascending in
//	              byte order (so the root comes first and every parent
//	              before its children)
//	  recSession  SnapshotSession, one per session, ids strictly ascending
//	trailer    recTrailer (1 byte), record count (8 bytes, big-endian),
//	           CRC-32C (Castagnoli) of every byte before it (4 bytes,
//	           big-endian)
//
// The indexes (ephemerals by session, TTL deadlines) are not stored:
// ReadSnapshot rebuilds them. All integers are big-endian.
const (
	snapshotFormat = 4
	// snapshotFormatNoOwner is the previous format (no session owners, no
	// user generations), still read.
	snapshotFormatNoOwner = 3
	// snapshotFormatNoACL is the format before it, still read.
	snapshotFormatNoACL = 2

	recHeader  = 1
	recNode    = 2
	recSession = 3
	recReply   = 4
	recUser    = 5 // format 3
	recTrailer = 0xFF

	// maxRecord bounds one record's payload. A node's data is far below
	// it (the edge caps data at a few MiB); anything larger is damage.
	maxRecord = 64 << 20
)

var snapshotMagic = []byte("COORDTREE\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapWriter struct {
	w     *bufio.Writer
	crc   uint32
	count uint64
	buf   []byte
}

func (s *snapWriter) write(p []byte) error {
	s.crc = crc32.Update(s.crc, castagnoli, p)
	_, err := s.w.Write(p)
	return err
}

func (s *snapWriter) record(typ byte, m proto.Message) error {
	// Room for the 5-byte record header, then the payload after it.
	s.buf = append(s.buf[:0], typ, 0, 0, 0, 0)
	var err error
	s.buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(s.buf, m)
	if err != nil {
		return err
	}
	size := len(s.buf) - 5
	if size > maxRecord {
		return fmt.Errorf("snapshot record of %d bytes exceeds %d", size, maxRecord)
	}
	binary.BigEndian.PutUint32(s.buf[1:5], uint32(size))
	s.count++
	return s.write(s.buf)
}

// WriteSnapshot streams the whole state to w. The Tree is immutable, so
// writes may go on while it streams.
func (t *Tree) WriteSnapshot(w io.Writer) error {
	s := &snapWriter{w: bufio.NewWriterSize(w, 256<<10)}
	if err := s.write(snapshotMagic); err != nil {
		return err
	}
	if err := s.record(recHeader, &coordpb.SnapshotHeader{
		Format: snapshotFormat, Zxid: t.zxid, Nodes: int64(t.nodes.Len()), Sessions: int64(t.sessions.Len()),
	}); err != nil {
		return err
	}
	sn := &coordpb.SnapshotNode{Stat: &coordpb.Stat{}}
	it := t.nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		sn.Path, sn.Data, sn.Seq = string(k), n.data, n.seq
		n.fillStat(sn.Stat)
		sn.Acl = sn.Acl[:0]
		for _, e := range n.acl {
			sn.Acl = append(sn.Acl, &coordpb.ACLEntry{Id: e.id, Perms: uint32(e.perms)})
		}
		if err := s.record(recNode, sn); err != nil {
			return err
		}
	}
	ss := &coordpb.SnapshotSession{}
	sit := t.sessions.Root().Iterator()
	for k, rec, ok := sit.Next(); ok; k, rec, ok = sit.Next() {
		ss.SessionId, ss.TimeoutMs, ss.Owner = binary.BigEndian.Uint64(k), rec.timeoutMs, rec.owner
		if err := s.record(recSession, ss); err != nil {
			return err
		}
	}
	sr := &coordpb.SnapshotReply{}
	rit := t.replies.Root().Iterator()
	for k, res, ok := rit.Next(); ok; k, res, ok = rit.Next() {
		sr.SessionId, sr.RequestId, sr.Result = binary.BigEndian.Uint64(k), binary.BigEndian.Uint64(k[8:]), res
		if err := s.record(recReply, sr); err != nil {
			return err
		}
	}
	su := &coordpb.SnapshotUser{}
	uit := t.users.Root().Iterator()
	for k, u, ok := uit.Next(); ok; k, u, ok = uit.Next() {
		su.Name, su.BcryptHash, su.Groups, su.Generation = string(k), u.hash, u.groups, u.gen
		if err := s.record(recUser, su); err != nil {
			return err
		}
	}
	var tr [9]byte
	tr[0] = recTrailer
	binary.BigEndian.PutUint64(tr[1:], s.count)
	if err := s.write(tr[:]); err != nil {
		return err
	}
	if _, err := s.w.Write(binary.BigEndian.AppendUint32(nil, s.crc)); err != nil {
		return err
	}
	return s.w.Flush()
}

// snapReader reads and checksums a snapshot stream.
type snapReader struct {
	r   *bufio.Reader
	crc uint32
	hdr [9]byte
	buf []byte
}

// readFull reads len(p) bytes into p and adds them to the checksum.
func (s *snapReader) readFull(p []byte, what string) error {
	if _, err := io.ReadFull(s.r, p); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return corrupt("truncated in %s", what)
		}
		return fmt.Errorf("read snapshot %s: %w", what, err)
	}
	s.crc = crc32.Update(s.crc, castagnoli, p)
	return nil
}

// next reads one record: its type and, unless it is the trailer, payload.
func (s *snapReader) next(index uint64) (byte, []byte, error) {
	if err := s.readFull(s.hdr[:1], "record type"); err != nil {
		return 0, nil, err
	}
	if s.hdr[0] == recTrailer {
		return recTrailer, nil, nil
	}
	if err := s.readFull(s.hdr[1:5], "record length"); err != nil {
		return 0, nil, err
	}
	size := binary.BigEndian.Uint32(s.hdr[1:5])
	if size > maxRecord {
		return 0, nil, corrupt("record %d claims %d bytes, more than the %d allowed", index, size, maxRecord)
	}
	// Read in chunks so that a damaged length on a short stream fails at
	// the end of the data, not after allocating maxRecord bytes.
	s.buf = s.buf[:0]
	for left := int(size); left > 0; {
		chunk := min(left, 1<<20)
		s.buf = slices.Grow(s.buf, chunk)
		part := s.buf[len(s.buf) : len(s.buf)+chunk]
		if err := s.readFull(part, "record"); err != nil {
			return 0, nil, fmt.Errorf("record %d: %w", index, err)
		}
		s.buf = s.buf[:len(s.buf)+chunk]
		left -= chunk
	}
	return s.hdr[0], s.buf, nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

// ReadSnapshot reads a stream written by WriteSnapshot and verifies all of
// it: checksum, counts, record order, every path, stat and parent, child
// counts, and that every ephemeral's session exists. Any damage gives an
// error wrapping ErrCorruptSnapshot with the reason; a failing reader gives
// its own error. It never panics and never returns a partial state. If r
// is not a *bufio.Reader it may read past the end of the snapshot.
func ReadSnapshot(r io.Reader) (*Tree, error) {
	s := &snapReader{r: bufio.NewReaderSize(r, 256<<10)}
	magic := make([]byte, len(snapshotMagic))
	if err := s.readFull(magic, "magic"); err != nil {
		return nil, err
	}
	if !bytes.Equal(magic, snapshotMagic) {
		return nil, corrupt("bad magic %q", magic)
	}
	typ, payload, err := s.next(0)
	if err != nil {
		return nil, err
	}
	if typ != recHeader {
		return nil, corrupt("first record has type %d, not a header", typ)
	}
	var hdr coordpb.SnapshotHeader
	if err := proto.Unmarshal(payload, &hdr); err != nil {
		return nil, corrupt("header: %v", err)
	}
	if hdr.Format != snapshotFormat && hdr.Format != snapshotFormatNoOwner && hdr.Format != snapshotFormatNoACL {
		return nil, corrupt("unknown format %d (want %d, %d or %d)", hdr.Format, snapshotFormat, snapshotFormatNoOwner, snapshotFormatNoACL)
	}
	b := &builder{
		zxid:     hdr.Zxid,
		nodes:    iradix.New[znode]().Txn(),
		sessions: iradix.New[sessionRec]().Txn(),
		ephem:    iradix.New[struct{}]().Txn(),
		ttls:     iradix.New[struct{}]().Txn(),
		replies:  iradix.New[*coordpb.ApplyResult]().Txn(),
		users:    iradix.New[userRec]().Txn(),
		children: map[string]int64{},
	}
	count := uint64(1)
	for {
		typ, payload, err := s.next(count)
		if err != nil {
			return nil, err
		}
		if typ == recTrailer {
			break
		}
		switch typ {
		case recNode:
			err = b.node(count, payload)
		case recSession:
			err = b.session(count, payload)
		case recReply:
			err = b.reply(count, payload)
		case recUser:
			err = b.user(count, payload)
		case recHeader:
			err = corrupt("second header at record %d", count)
		default:
			err = corrupt("unknown record type %d at record %d", typ, count)
		}
		if err != nil {
			return nil, err
		}
		count++
	}
	if err := s.readFull(s.hdr[1:9], "trailer"); err != nil {
		return nil, err
	}
	want := s.crc
	var sum [4]byte
	if err := s.readFull(sum[:], "checksum"); err != nil {
		return nil, err
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, corrupt("checksum mismatch: stored %08x, computed %08x", got, want)
	}
	if c := binary.BigEndian.Uint64(s.hdr[1:9]); c != count {
		return nil, corrupt("trailer counts %d records, read %d", c, count)
	}
	return b.finish(&hdr)
}

// builder assembles and checks a Tree from snapshot records.
type builder struct {
	zxid     uint64
	nodes    *iradix.Txn[znode]
	sessions *iradix.Txn[sessionRec]
	ephem    *iradix.Txn[struct{}]
	ttls     *iradix.Txn[struct{}]
	replies  *iradix.Txn[*coordpb.ApplyResult]
	users    *iradix.Txn[userRec]
	lastUser string
	lastRep  []byte
	children map[string]int64 // parent path → children seen
	lastPath []byte
	lastSess uint64
	nNodes   int64
	nSess    int64
	aclNodes int64
	sn       coordpb.SnapshotNode
}

func (b *builder) node(index uint64, payload []byte) error {
	if b.nSess > 0 || b.lastUser != "" {
		return corrupt("node record %d after the sessions", index)
	}
	sn := &b.sn
	if err := proto.Unmarshal(payload, sn); err != nil {
		return corrupt("node record %d: %v", index, err)
	}
	p := sn.Path
	if err := ValidatePath(p); err != nil {
		return corrupt("node record %d: %v", index, err)
	}
	if b.lastPath == nil && p != "/" {
		return corrupt("first node is %q, not the root", p)
	}
	if b.lastPath != nil && bytes.Compare([]byte(p), b.lastPath) <= 0 {
		return corrupt("node %q out of order after %q", p, b.lastPath)
	}
	b.lastPath = append(b.lastPath[:0], p...)
	n, err := nodeFromSnapshot(sn, b.zxid)
	if err != nil {
		return err
	}
	if p != "/" {
		parent := parentOf(p)
		pn, ok := b.nodes.Get([]byte(parent))
		if !ok {
			return corrupt("node %q has no parent", p)
		}
		if pn.mode == coordpb.CreateMode_EPHEMERAL {
			return corrupt("node %q under ephemeral %q", p, parent)
		}
		b.children[parent]++
	}
	b.nodes.Insert([]byte(p), n)
	b.nNodes++
	if n.acl != nil {
		b.aclNodes++
	}
	switch n.mode {
	case coordpb.CreateMode_EPHEMERAL:
		b.ephem.Insert(ephemKey(n.aux, p), struct{}{})
	case coordpb.CreateMode_TTL:
		b.ttls.Insert(ttlKeyOf(p, &n), struct{}{})
	}
	return nil
}

func (b *builder) session(index uint64, payload []byte) error {
	var ss coordpb.SnapshotSession
	if err := proto.Unmarshal(payload, &ss); err != nil {
		return corrupt("session record %d: %v", index, err)
	}
	if ss.SessionId == 0 || ss.TimeoutMs <= 0 {
		return corrupt("session record %d: id %#x, timeout %d ms", index, ss.SessionId, ss.TimeoutMs)
	}
	if b.lastRep != nil || b.lastUser != "" {
		return corrupt("session record %d after the replies or users", index)
	}
	if ss.SessionId <= b.lastSess {
		return corrupt("session %#x out of order after %#x", ss.SessionId, b.lastSess)
	}
	b.lastSess = ss.SessionId
	if len(ss.Owner) > maxOwnerBytes {
		return corrupt("session record %d: owner of %d bytes", index, len(ss.Owner))
	}
	b.sessions.Insert(sessionKey(ss.SessionId), sessionRec{timeoutMs: ss.TimeoutMs, owner: ss.Owner})
	b.nSess++
	return nil
}

func (b *builder) finish(hdr *coordpb.SnapshotHeader) (*Tree, error) {
	if hdr.Nodes != b.nNodes || hdr.Sessions != b.nSess {
		return nil, corrupt("header promises %d nodes and %d sessions, found %d and %d", hdr.Nodes, hdr.Sessions, b.nNodes, b.nSess)
	}
	if b.nNodes == 0 {
		return nil, corrupt("no root node")
	}
	var bad error
	b.nodes.Root().Walk(func(k []byte, n znode) bool {
		if have := b.children[string(k)]; n.numChildren != have {
			bad = corrupt("node %q claims %d children, has %d", k, n.numChildren, have)
			return true
		}
		return false
	})
	if bad != nil {
		return nil, bad
	}
	it := b.ephem.Root().Iterator()
	for k, _, ok := it.Next(); ok; k, _, ok = it.Next() {
		if _, live := b.sessions.Get(k[:8]); !live {
			return nil, corrupt("ephemeral %q of unknown session %#x", k[8:], binary.BigEndian.Uint64(k[:8]))
		}
	}
	return &Tree{
		nodes:    b.nodes.CommitOnly(),
		sessions: b.sessions.CommitOnly(),
		ephem:    b.ephem.CommitOnly(),
		ttls:     b.ttls.CommitOnly(),
		replies:  b.replies.CommitOnly(),
		users:    b.users.CommitOnly(),
		zxid:     b.zxid,
		aclNodes: b.aclNodes,
	}, nil
}

func (b *builder) reply(index uint64, payload []byte) error {
	var sr coordpb.SnapshotReply
	if err := proto.Unmarshal(payload, &sr); err != nil {
		return corrupt("reply record %d: %v", index, err)
	}
	if b.lastUser != "" {
		return corrupt("reply record %d after the users", index)
	}
	if sr.Result == nil || sr.RequestId == 0 {
		return corrupt("reply record %d: empty", index)
	}
	if _, live := b.sessions.Get(sessionKey(sr.SessionId)); !live {
		return corrupt("reply record %d of unknown session %#x", index, sr.SessionId)
	}
	key := replyKey(sr.SessionId, sr.RequestId)
	if b.lastRep != nil && bytes.Compare(key, b.lastRep) <= 0 {
		return corrupt("reply record %d out of order", index)
	}
	if sr.Result.Zxid > b.zxid {
		return corrupt("reply record %d from zxid %d, after the snapshot's %d", index, sr.Result.Zxid, b.zxid)
	}
	b.lastRep = key
	b.replies.Insert(key, sr.Result)
	return nil
}

// nodeFromSnapshot checks one node record against the rules Apply keeps.
func nodeFromSnapshot(sn *coordpb.SnapshotNode, zxid uint64) (znode, error) {
	p, st := sn.Path, sn.Stat
	if st == nil {
		return znode{}, corrupt("node %q has no stat", p)
	}
	if st.DataLength != int64(len(sn.Data)) {
		return znode{}, corrupt("node %q holds %d data bytes, its stat says %d", p, len(sn.Data), st.DataLength)
	}
	if st.Czxid > zxid || st.Mzxid > zxid || st.Pzxid > zxid {
		return znode{}, corrupt("node %q has a zxid after the snapshot's %d", p, zxid)
	}
	if st.Version < 0 || st.Cversion < 0 || st.NumChildren < 0 {
		return znode{}, corrupt("node %q has a negative version or child count", p)
	}
	var aux uint64
	switch st.Mode {
	case coordpb.CreateMode_PERSISTENT, coordpb.CreateMode_CONTAINER:
		if st.EphemeralOwner != 0 || st.TtlMs != 0 {
			return znode{}, corrupt("node %q: mode %v with owner %#x and ttl %d", p, st.Mode, st.EphemeralOwner, st.TtlMs)
		}
	case coordpb.CreateMode_EPHEMERAL:
		if st.EphemeralOwner == 0 || st.TtlMs != 0 {
			return znode{}, corrupt("node %q: ephemeral with owner %#x and ttl %d", p, st.EphemeralOwner, st.TtlMs)
		}
		aux = st.EphemeralOwner
	case coordpb.CreateMode_TTL:
		if st.TtlMs <= 0 || st.EphemeralOwner != 0 {
			return znode{}, corrupt("node %q: TTL node with owner %#x and ttl %d", p, st.EphemeralOwner, st.TtlMs)
		}
		aux = uint64(st.TtlMs)
	default:
		return znode{}, corrupt("node %q: unknown mode %d", p, st.Mode)
	}
	if st.NumChildren > 0 && !st.Directory {
		return znode{}, corrupt("node %q has children but is not a directory", p)
	}
	if st.Directory && st.Mode == coordpb.CreateMode_EPHEMERAL {
		return znode{}, corrupt("ephemeral node %q is a directory", p)
	}
	if p == "/" && st.Mode != coordpb.CreateMode_PERSISTENT {
		return znode{}, corrupt("root has mode %v", st.Mode)
	}
	data := sn.Data
	if len(data) == 0 {
		data = nil
	}
	if st.Aversion < 0 {
		return znode{}, corrupt("node %q has a negative acl version", p)
	}
	var acl []aclEntry
	if len(sn.Acl) > 0 {
		if len(sn.Acl) > MaxACLEntries {
			return znode{}, corrupt("node %q has %d ACL entries", p, len(sn.Acl))
		}
		acl = make([]aclEntry, len(sn.Acl))
		for i, e := range sn.Acl {
			perms := Perm(e.GetPerms())
			if !validID(e.GetId()) || e.GetId() == IDCreator || perms == 0 || perms&^PermAll != 0 {
				return znode{}, corrupt("node %q has a bad ACL entry %q/%#x", p, e.GetId(), e.GetPerms())
			}
			acl[i] = aclEntry{id: e.GetId(), perms: perms}
		}
	}
	return znode{
		data: data, czxid: st.Czxid, mzxid: st.Mzxid, pzxid: st.Pzxid,
		ctime: st.Ctime, mtime: st.Mtime, version: st.Version, cversion: st.Cversion,
		numChildren: st.NumChildren, seq: sn.Seq, aux: aux, mode: st.Mode, dir: st.Directory,
		acl: acl, aversion: st.Aversion,
	}, nil
}
