package tree

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"

	iradix "github.com/hashicorp/go-immutable-radix/v2"
	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

// Snapshot stream format (version 1):
//
//	magic "COORDTREE1\n"
//	records: type byte, uvarint length, payload
//	  recHeader  SnapshotHeader (first)
//	  recNode    SnapshotNode, in path order (parents before children)
//	  recSession SnapshotSession
//	trailer: recTrailer, 8-byte big-endian record count, 4-byte CRC-32C
//	(Castagnoli) of every byte before the CRC.
//
// ReadSnapshot verifies the CRC, the counts, every path, every parent and
// every child count, and rebuilds the indexes.
const (
	snapshotFormat = 1
	recHeader      = 1
	recNode        = 2
	recSession     = 3
	recTrailer     = 0xFF

	// maxRecord bounds one record's length: a node's data is far smaller;
	// anything larger is damage, not data.
	maxRecord = 64 << 20
)

var treeMagic = []byte("COORDTREE1\n")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

type snapWriter struct {
	w     *bufio.Writer
	crc   hash.Hash32
	count uint64
	buf   []byte
}

func (s *snapWriter) write(p []byte) error {
	s.crc.Write(p)
	_, err := s.w.Write(p)
	return err
}

func (s *snapWriter) record(typ byte, m proto.Message) error {
	var err error
	s.buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(s.buf[:0], m)
	if err != nil {
		return err
	}
	var hdr [1 + binary.MaxVarintLen64]byte
	hdr[0] = typ
	n := binary.PutUvarint(hdr[1:], uint64(len(s.buf)))
	if err := s.write(hdr[:1+n]); err != nil {
		return err
	}
	s.count++
	return s.write(s.buf)
}

// WriteSnapshot streams the whole state to w.
func (t *Tree) WriteSnapshot(w io.Writer) error {
	s := &snapWriter{w: bufio.NewWriterSize(w, 256<<10), crc: crc32.New(castagnoli)}
	if err := s.write(treeMagic); err != nil {
		return err
	}
	if err := s.record(recHeader, &coordpb.SnapshotHeader{
		Format: snapshotFormat, Zxid: t.zxid, Nodes: int64(t.nodes.Len()), Sessions: int64(t.sessions.Len()),
	}); err != nil {
		return err
	}
	sn := &coordpb.SnapshotNode{}
	it := t.nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		sn.Path, sn.Data, sn.Stat, sn.Seq = string(k), n.data, n.stat(), n.seq
		if err := s.record(recNode, sn); err != nil {
			return err
		}
	}
	for _, x := range t.Sessions() {
		if err := s.record(recSession, &coordpb.SnapshotSession{SessionId: x.ID, TimeoutMs: x.TimeoutMs}); err != nil {
			return err
		}
	}
	var tr [9]byte
	tr[0] = recTrailer
	binary.BigEndian.PutUint64(tr[1:], s.count)
	if err := s.write(tr[:]); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], s.crc.Sum32())
	if _, err := s.w.Write(sum[:]); err != nil {
		return err
	}
	return s.w.Flush()
}

// crcReader hashes what it reads.
type crcReader struct {
	r   *bufio.Reader
	crc hash.Hash32
}

func (c *crcReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.crc.Write([]byte{b})
	}
	return b, err
}

func (c *crcReader) readFull(p []byte) error {
	if _, err := io.ReadFull(c.r, p); err != nil {
		return err
	}
	c.crc.Write(p)
	return nil
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorruptSnapshot, fmt.Sprintf(format, args...))
}

func unexpected(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return corrupt("truncated in %s", what)
	}
	return fmt.Errorf("read snapshot %s: %w", what, err)
}

// ReadSnapshot reads a stream written by WriteSnapshot. Any damage gives an
// error wrapping ErrCorruptSnapshot; it never panics and never returns a
// partial state.
func ReadSnapshot(r io.Reader) (*Tree, error) {
	cr := &crcReader{r: bufio.NewReaderSize(r, 256<<10), crc: crc32.New(castagnoli)}
	magic := make([]byte, len(treeMagic))
	if err := cr.readFull(magic); err != nil {
		return nil, unexpected(err, "magic")
	}
	if string(magic) != string(treeMagic) {
		return nil, corrupt("bad magic %q", magic)
	}
	var (
		hdr      *coordpb.SnapshotHeader
		count    uint64
		buf      []byte
		nodes    = iradix.New[*znode]().Txn()
		sessions = iradix.New[int64]().Txn()
		ephem    = iradix.New[struct{}]().Txn()
		ttls     = iradix.New[struct{}]().Txn()
		children = map[string]int64{}
		nNodes   int64
		nSess    int64
	)
	for {
		typ, err := cr.ReadByte()
		if err != nil {
			return nil, unexpected(err, "record type")
		}
		if typ == recTrailer {
			break
		}
		size, err := binary.ReadUvarint(cr)
		if err != nil {
			return nil, unexpected(err, "record length")
		}
		if size > maxRecord {
			return nil, corrupt("record %d claims %d bytes", count, size)
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if err := cr.readFull(buf); err != nil {
			return nil, unexpected(err, "record")
		}
		count++
		if hdr == nil && typ != recHeader {
			return nil, corrupt("first record is type %d, not a header", typ)
		}
		switch typ {
		case recHeader:
			if hdr != nil {
				return nil, corrupt("second header at record %d", count)
			}
			hdr = &coordpb.SnapshotHeader{}
			if err := proto.Unmarshal(buf, hdr); err != nil {
				return nil, corrupt("header: %v", err)
			}
			if hdr.Format != snapshotFormat {
				return nil, corrupt("unknown format %d", hdr.Format)
			}
		case recNode:
			var sn coordpb.SnapshotNode
			if err := proto.Unmarshal(buf, &sn); err != nil {
				return nil, corrupt("node record %d: %v", count, err)
			}
			n, err := nodeFromSnapshot(&sn)
			if err != nil {
				return nil, err
			}
			if sn.Path != "/" {
				parent := parentOf(sn.Path)
				pn, ok := nodes.Get([]byte(parent))
				if !ok {
					return nil, corrupt("node %q before its parent", sn.Path)
				}
				if pn.owner != 0 {
					return nil, corrupt("node %q under ephemeral %q", sn.Path, parent)
				}
				children[parent]++
			} else if nNodes != 0 {
				return nil, corrupt("root after other nodes")
			}
			if _, dup := nodes.Insert([]byte(sn.Path), n); dup {
				return nil, corrupt("node %q twice", sn.Path)
			}
			nNodes++
			if n.owner != 0 {
				ephem.Insert(ephemKey(n.owner, sn.Path), struct{}{})
			}
			if n.mode == coordpb.CreateMode_TTL {
				ttls.Insert([]byte(sn.Path), struct{}{})
			}
		case recSession:
			var ss coordpb.SnapshotSession
			if err := proto.Unmarshal(buf, &ss); err != nil {
				return nil, corrupt("session record %d: %v", count, err)
			}
			if ss.SessionId == 0 || ss.TimeoutMs <= 0 {
				return nil, corrupt("session record %d: id %d timeout %d", count, ss.SessionId, ss.TimeoutMs)
			}
			if _, dup := sessions.Insert(sessionKey(ss.SessionId), ss.TimeoutMs); dup {
				return nil, corrupt("session %#x twice", ss.SessionId)
			}
			nSess++
		default:
			return nil, corrupt("unknown record type %d at record %d", typ, count)
		}
	}
	var tr [8]byte
	if err := cr.readFull(tr[:]); err != nil {
		return nil, unexpected(err, "trailer")
	}
	want := cr.crc.Sum32()
	var sum [4]byte
	if _, err := io.ReadFull(cr.r, sum[:]); err != nil {
		return nil, unexpected(err, "checksum")
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return nil, corrupt("checksum mismatch: stored %08x, computed %08x", got, want)
	}
	if c := binary.BigEndian.Uint64(tr[:]); c != count {
		return nil, corrupt("trailer counts %d records, read %d", c, count)
	}
	if hdr == nil {
		return nil, corrupt("no header")
	}
	if hdr.Nodes != nNodes || hdr.Sessions != nSess {
		return nil, corrupt("header promises %d nodes and %d sessions, found %d and %d", hdr.Nodes, hdr.Sessions, nNodes, nSess)
	}
	if _, ok := nodes.Get([]byte("/")); !ok {
		return nil, corrupt("no root node")
	}
	// Child counts must match the nodes present.
	it := nodes.Root().Iterator()
	for k, n, ok := it.Next(); ok; k, n, ok = it.Next() {
		if n.numChildren != children[string(k)] {
			return nil, corrupt("node %q claims %d children, has %d", k, n.numChildren, children[string(k)])
		}
	}
	// Ephemerals must belong to live sessions.
	eit := ephem.Root().Iterator()
	for k, _, ok := eit.Next(); ok; k, _, ok = eit.Next() {
		if _, live := sessions.Get(k[:8]); !live {
			return nil, corrupt("ephemeral %q of unknown session %#x", k[8:], binary.BigEndian.Uint64(k[:8]))
		}
	}
	return &Tree{
		nodes:    nodes.CommitOnly(),
		sessions: sessions.CommitOnly(),
		ephem:    ephem.CommitOnly(),
		ttls:     ttls.CommitOnly(),
		zxid:     hdr.Zxid,
	}, nil
}

func nodeFromSnapshot(sn *coordpb.SnapshotNode) (*znode, error) {
	if err := ValidatePath(sn.Path); err != nil {
		return nil, corrupt("node path: %v", err)
	}
	st := sn.Stat
	if st == nil {
		return nil, corrupt("node %q has no stat", sn.Path)
	}
	if st.DataLength != int64(len(sn.Data)) {
		return nil, corrupt("node %q: data length %d, stat says %d", sn.Path, len(sn.Data), st.DataLength)
	}
	switch st.Mode {
	case coordpb.CreateMode_PERSISTENT, coordpb.CreateMode_CONTAINER, coordpb.CreateMode_TTL, coordpb.CreateMode_EPHEMERAL:
	default:
		return nil, corrupt("node %q: unknown mode %d", sn.Path, st.Mode)
	}
	if (st.Mode == coordpb.CreateMode_EPHEMERAL) != (st.EphemeralOwner != 0) {
		return nil, corrupt("node %q: mode %v with owner %#x", sn.Path, st.Mode, st.EphemeralOwner)
	}
	if sn.Path == "/" && st.Mode != coordpb.CreateMode_PERSISTENT {
		return nil, corrupt("root with mode %v", st.Mode)
	}
	if st.NumChildren < 0 {
		return nil, corrupt("node %q: negative child count", sn.Path)
	}
	data := sn.Data
	if len(data) == 0 {
		data = nil
	}
	return &znode{
		data: data, czxid: st.Czxid, mzxid: st.Mzxid, pzxid: st.Pzxid,
		ctime: st.Ctime, mtime: st.Mtime, version: st.Version, cversion: st.Cversion,
		owner: st.EphemeralOwner, numChildren: st.NumChildren, seq: sn.Seq, ttl: st.TtlMs, mode: st.Mode,
	}, nil
}
