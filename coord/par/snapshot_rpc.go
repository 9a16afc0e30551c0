package par

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"coord/proto/parpb"
)

// This file is the snapshot half of PeerRepair (design §4.6): the
// responder lists its verified snapshots with their sidecar checksums and
// streams verified chunks; the requester checks every chunk against the
// checksums it expects before using a byte.

// info turns a sidecar into its wire form.
func (sc *sidecar) info() *parpb.SnapshotInfo {
	cfg, _ := encodeConfiguration(sc.Meta.Configuration)
	return &parpb.SnapshotInfo{
		Id: sc.Meta.ID, Index: sc.Meta.Index, Term: sc.Meta.Term, Size: sc.Meta.Size, Sha256: sc.SHA256,
		ChunkSize: sc.ChunkSize, ChunkCrcs: sc.ChunkCRCs, Version: uint64(sc.Meta.Version),
		ConfigurationIndex: sc.Meta.ConfigurationIndex, Configuration: cfg,
	}
}

func encodeConfiguration(c raft.Configuration) (b []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("encode configuration: %v", r)
		}
	}()
	return raft.EncodeConfiguration(c), nil
}

func decodeConfiguration(b []byte) (c raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decode configuration: %v", r) // raft panics on bad bytes
		}
	}()
	return raft.DecodeConfiguration(b), nil
}

// identical reports whether a peer's snapshot is byte-identical to ours
// (same size, SHA-256 and chunk checksums).
func identical(sc *sidecar, in *parpb.SnapshotInfo) bool {
	return in.Size == sc.Meta.Size && in.ChunkSize == sc.ChunkSize && bytes.Equal(in.Sha256, sc.SHA256) &&
		slices.Equal(in.ChunkCrcs, sc.ChunkCRCs)
}

// ListSnapshots lists the verified snapshots.
func (srv *Server) ListSnapshots(ctx context.Context, _ *parpb.ListSnapshotsRequest) (*parpb.ListSnapshotsResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	resp := &parpb.ListSnapshotsResponse{Responder: srv.s.cfg.Name}
	ss := srv.s.snaps
	if ss == nil {
		return resp, nil
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, sc := range ss.sorted() {
		resp.Snapshots = append(resp.Snapshots, sc.info())
	}
	return resp, nil
}

// FetchSnapshot streams the requested chunks of a verified snapshot. A
// chunk that fails its checksum is never sent: the snapshot is quarantined
// and the stream ends with DataLoss.
func (srv *Server) FetchSnapshot(req *parpb.FetchSnapshotRequest, stream grpc.ServerStreamingServer[parpb.SnapshotChunk]) error {
	// The store's gate is held while reading, never while sending (a
	// slow receiver must not hold Close up).
	leave, err := srv.enter()
	if err != nil {
		return err
	}
	ss := srv.s.snaps
	if ss == nil {
		leave()
		return status.Error(codes.NotFound, "no snapshot store")
	}
	ss.mu.Lock()
	sc := ss.verified[req.Id]
	ss.mu.Unlock()
	if sc == nil {
		leave()
		return status.Errorf(codes.NotFound, "snapshot %q: %v", req.Id, ErrNoSnapshot)
	}
	f, err := os.Open(filepath.Join(ss.snapDir(req.Id), snapStateFile))
	leave()
	if err != nil {
		return status.Errorf(codes.NotFound, "snapshot %q: %v", req.Id, err)
	}
	defer f.Close()
	chunks := req.Chunks
	if len(chunks) == 0 {
		for k := range sc.chunks() {
			chunks = append(chunks, uint32(k))
		}
	}
	for _, k := range chunks {
		if int(k) >= sc.chunks() {
			return status.Errorf(codes.InvalidArgument, "snapshot %q has %d chunks, asked for %d", req.Id, sc.chunks(), k)
		}
		b := make([]byte, sc.chunkLen(int(k)))
		leave, err := srv.enter()
		if err != nil {
			return err
		}
		if _, err := f.ReadAt(b, int64(k)*int64(sc.ChunkSize)); err != nil || crc(b) != sc.ChunkCRCs[k] {
			_ = ss.Quarantine(req.Id, []int{int(k)})
			leave()
			return status.Errorf(codes.DataLoss, "snapshot %q chunk %d fails verification", req.Id, k)
		}
		leave()
		if err := stream.Send(&parpb.SnapshotChunk{Chunk: k, Data: b, Crc32C: sc.ChunkCRCs[k]}); err != nil {
			return err
		}
	}
	return nil
}

// RequestSnapshot takes a raft snapshot now if the newest verified one does
// not cover req.MinIndex (raft must be running here).
func (srv *Server) RequestSnapshot(ctx context.Context, req *parpb.RequestSnapshotRequest) (*parpb.RequestSnapshotResponse, error) {
	leave, err := srv.enter()
	if err != nil {
		return nil, err
	}
	defer leave()
	ss := srv.s.snaps
	if ss == nil {
		return nil, status.Error(codes.FailedPrecondition, "no snapshot store")
	}
	ss.triggerMu.Lock()
	defer ss.triggerMu.Unlock()
	if i, _, ok := ss.Newest(); ok && i >= req.MinIndex {
		return &parpb.RequestSnapshotResponse{Responder: srv.s.cfg.Name, Index: i}, nil
	}
	f := ss.trigger.Load()
	if f == nil {
		return nil, status.Error(codes.FailedPrecondition, "raft is not running here yet")
	}
	if err := (*f)(); err != nil && !errors.Is(err, raft.ErrNothingNewToSnapshot) {
		return nil, status.Errorf(codes.Unavailable, "take snapshot: %v", err)
	}
	i, _, _ := ss.Newest()
	return &parpb.RequestSnapshotResponse{Responder: srv.s.cfg.Name, Index: i}, nil
}

// requestSnapshot asks peers, in turn, to take a snapshot covering
// minIndex; it reports whether one now lists such a snapshot.
func (c *Client) requestSnapshot(ctx context.Context, minIndex uint64) bool {
	for _, p := range c.peers {
		cl, err := c.conn(p)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, snapshotFetchTimeout)
		resp, err := cl.RequestSnapshot(cctx, &parpb.RequestSnapshotRequest{Requester: c.self, MinIndex: minIndex})
		cancel()
		if err == nil && resp.Index >= minIndex {
			return true
		}
	}
	return false
}

// peerSnapshots is one peer's verified snapshot list.
type peerSnapshots struct {
	peer  Peer
	snaps []*parpb.SnapshotInfo
}

// listSnapshots asks every peer for its snapshots (peers that do not
// answer are left out).
func (c *Client) listSnapshots(ctx context.Context) []peerSnapshots {
	var out []peerSnapshots
	for _, p := range c.peers {
		cl, err := c.conn(p)
		if err != nil {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, c.CallTimeout)
		resp, err := cl.ListSnapshots(cctx, &parpb.ListSnapshotsRequest{Requester: c.self}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			continue
		}
		out = append(out, peerSnapshots{peer: p, snaps: resp.Snapshots})
	}
	return out
}

// snapshotFetchTimeout bounds one FetchSnapshot stream.
const snapshotFetchTimeout = 30 * time.Second

// fetchChunks streams the given chunks of peer's snapshot id, checks each
// against want(k) (the checksum the requester trusts) and hands it to use.
// It fails on the first chunk that does not verify.
func (c *Client) fetchChunks(ctx context.Context, p Peer, id string, chunks []uint32, want func(k uint32) (uint32, int64), use func(k uint32, b []byte) error) error {
	cl, err := c.conn(p)
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, snapshotFetchTimeout)
	defer cancel()
	st, err := cl.FetchSnapshot(cctx, &parpb.FetchSnapshotRequest{Requester: c.self, Id: id, Chunks: chunks}, grpc.WaitForReady(true))
	if err != nil {
		return fmt.Errorf("fetch snapshot %s from %s: %w", id, p.Name, err)
	}
	got := 0
	for {
		ch, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("fetch snapshot %s from %s: %w", id, p.Name, err)
		}
		if got >= len(chunks) || ch.Chunk != chunks[got] {
			return fmt.Errorf("fetch snapshot %s from %s: chunk %d out of order", id, p.Name, ch.Chunk)
		}
		sum, n := want(ch.Chunk)
		if int64(len(ch.Data)) != n || crc(ch.Data) != sum {
			return &SnapshotError{ID: id, Chunk: int(ch.Chunk), Reason: "chunk from " + p.Name + " fails the expected checksum"}
		}
		if err := use(ch.Chunk, ch.Data); err != nil {
			return err
		}
		got++
	}
	if got != len(chunks) {
		return fmt.Errorf("fetch snapshot %s from %s: %d of %d chunks", id, p.Name, got, len(chunks))
	}
	return nil
}
