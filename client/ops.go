package client

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/protobuf/proto"

	"coord/proto/coordpb"
)

func (c *Client) readOpts(ro *ReadOptions) *coordpb.ReadOptions {
	if ro == nil || !ro.Local {
		return nil
	}
	return &coordpb.ReadOptions{Consistency: coordpb.Consistency_LOCAL, MinZxid: c.seen.Load()}
}

// createPB builds a CreateOp, opening the session for an ephemeral node.
func (c *Client) createPB(ctx context.Context, path string, data []byte, opts *CreateOptions) (*coordpb.CreateOp, error) {
	op, err := createOpPB(path, data, opts)
	if err != nil {
		return nil, err
	}
	if opts != nil && opts.Ephemeral {
		if op.SessionId, err = c.Session(ctx); err != nil {
			return nil, err
		}
	}
	return op, nil
}

// sessionCheck ends the local session when the server says the session a
// request named has expired.
func (c *Client) sessionCheck(id uint64, err error) {
	if id != 0 && errors.Is(err, ErrSessionExpired) {
		c.endSession(id, err)
	}
}

// Create makes a node and returns its path (with the sequence suffix for a
// sequential node) and stat. opts nil makes a persistent node. An
// ephemeral node opens the client's session on first use.
func (c *Client) Create(ctx context.Context, path string, data []byte, opts *CreateOptions) (string, *Stat, error) {
	op, err := c.createPB(ctx, path, data, opts)
	if err != nil {
		return "", nil, err
	}
	var resp *coordpb.CreateResponse
	err = c.writeCall(ctx, func(ctx context.Context, r coordpb.CoordClient, wh *coordpb.WriteHeader) (err error) {
		resp, err = r.Create(ctx, &coordpb.CreateRequest{Op: op, Write: wh})
		return err
	})
	if err != nil {
		c.sessionCheck(op.SessionId, err)
		return "", nil, err
	}
	c.observe(resp.Header)
	return resp.Path, statFromPB(resp.Stat), nil
}

// Get returns a node's data and stat.
func (c *Client) Get(ctx context.Context, path string, ro *ReadOptions) ([]byte, *Stat, error) {
	var resp *coordpb.GetResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Get(ctx, &coordpb.GetRequest{Path: path, Read: c.readOpts(ro)})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	c.observe(resp.Header)
	if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
		return nil, nil, err
	}
	return resp.Data, statFromPB(resp.Stat), nil
}

// Set replaces a node's data if its version matches (-1: any).
func (c *Client) Set(ctx context.Context, path string, data []byte, version int64) (*Stat, error) {
	var resp *coordpb.SetResponse
	err := c.writeCall(ctx, func(ctx context.Context, r coordpb.CoordClient, wh *coordpb.WriteHeader) (err error) {
		resp, err = r.Set(ctx, &coordpb.SetRequest{Op: &coordpb.SetOp{Path: path, Data: data, Version: version}, Write: wh})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return statFromPB(resp.Stat), nil
}

// Delete removes a childless node if its version matches (-1: any).
func (c *Client) Delete(ctx context.Context, path string, version int64) error {
	_, err := c.delete(ctx, path, version, false)
	return err
}

// DeleteAll removes a node and its whole subtree atomically (the version
// is checked on the node itself) and returns how many nodes went.
func (c *Client) DeleteAll(ctx context.Context, path string, version int64) (int64, error) {
	return c.delete(ctx, path, version, true)
}

func (c *Client) delete(ctx context.Context, path string, version int64, recursive bool) (int64, error) {
	var resp *coordpb.DeleteResponse
	err := c.writeCall(ctx, func(ctx context.Context, r coordpb.CoordClient, wh *coordpb.WriteHeader) (err error) {
		resp, err = r.Delete(ctx, &coordpb.DeleteRequest{Op: &coordpb.DeleteOp{Path: path, Version: version, Recursive: recursive}, Write: wh})
		return err
	})
	if err != nil {
		return 0, err
	}
	c.observe(resp.Header)
	return resp.Deleted, nil
}

// Exists returns the node's stat, or (nil, nil) when it does not exist.
func (c *Client) Exists(ctx context.Context, path string, ro *ReadOptions) (*Stat, error) {
	var resp *coordpb.ExistsResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Exists(ctx, &coordpb.ExistsRequest{Path: path, Read: c.readOpts(ro)})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
		return nil, err
	}
	if !resp.Exists {
		return nil, nil
	}
	return statFromPB(resp.Stat), nil
}

// ChildrenPage returns up to limit child names after startAfter (server
// default when limit is 0), the parent's stat and whether more follow.
func (c *Client) ChildrenPage(ctx context.Context, path, startAfter string, limit int, ro *ReadOptions) ([]string, *Stat, bool, error) {
	var resp *coordpb.ChildrenResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Children(ctx, &coordpb.ChildrenRequest{Path: path, StartAfter: startAfter, Limit: int32(limit), Read: c.readOpts(ro)})
		return err
	})
	if err != nil {
		return nil, nil, false, err
	}
	c.observe(resp.Header)
	if err := c.orderAfterWatches(ctx, resp.Header.GetZxid()); err != nil {
		return nil, nil, false, err
	}
	return resp.Names, statFromPB(resp.Stat), resp.More, nil
}

// Children returns all child names in byte order, paging as needed. Each
// page is consistent; a listing spanning pages may see changes between
// them.
func (c *Client) Children(ctx context.Context, path string, ro *ReadOptions) ([]string, *Stat, error) {
	var all []string
	var stat *Stat
	after := ""
	for {
		names, st, more, err := c.ChildrenPage(ctx, path, after, 0, ro)
		if err != nil {
			return nil, nil, err
		}
		all, stat = append(all, names...), st
		if !more || len(names) == 0 {
			return all, stat, nil
		}
		after = names[len(names)-1]
	}
}

// Multi applies ops atomically: all or none. It returns one result per
// op. When an op fails the error is a *MultiError with the op's index,
// which unwraps to the op's error (errors.Is(err, ErrBadVersion)).
func (c *Client) Multi(ctx context.Context, ops ...Op) ([]OpResult, error) {
	pb := make([]*coordpb.Op, len(ops))
	var sid uint64
	for i, o := range ops {
		if o.pb == nil {
			return nil, &MultiError{Index: i, Err: &Error{Message: "invalid argument: empty op", failedOp: -1, err: ErrInvalidArgument}}
		}
		if o.err != nil {
			return nil, &MultiError{Index: i, Err: o.err}
		}
		pb[i] = o.pb
		if o.ephemeral {
			if sid == 0 {
				var err error
				if sid, err = c.Session(ctx); err != nil {
					return nil, err
				}
			}
			cp := proto.Clone(o.pb).(*coordpb.Op)
			cp.GetCreate().SessionId = sid
			pb[i] = cp
		}
	}
	var resp *coordpb.MultiResponse
	err := c.writeCall(ctx, func(ctx context.Context, r coordpb.CoordClient, wh *coordpb.WriteHeader) (err error) {
		resp, err = r.Multi(ctx, &coordpb.MultiRequest{Ops: pb, Write: wh})
		return err
	})
	if err != nil {
		c.sessionCheck(sid, err)
		var e *Error
		if errors.As(err, &e) && e.failedOp >= 0 && e.failedOp < len(ops) {
			return nil, &MultiError{Index: e.failedOp, Err: err}
		}
		return nil, err
	}
	c.observe(resp.Header)
	out := make([]OpResult, len(resp.Results))
	for i, r := range resp.Results {
		switch x := r.Result.(type) {
		case *coordpb.OpResult_Create:
			out[i] = OpResult{Path: x.Create.Path, Stat: statFromPB(x.Create.Stat)}
		case *coordpb.OpResult_Set:
			out[i] = OpResult{Stat: statFromPB(x.Set.Stat)}
		case *coordpb.OpResult_Delete:
			out[i] = OpResult{Deleted: x.Delete.Deleted}
		case *coordpb.OpResult_Check:
			out[i] = OpResult{Stat: statFromPB(x.Check.Stat)}
		}
	}
	return out, nil
}

// Sync makes the connected server catch up with the leader, so that a
// following local read is current.
func (c *Client) Sync(ctx context.Context, path string) error {
	return c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) error {
		resp, err := r.Sync(ctx, &coordpb.SyncRequest{Path: path})
		if err == nil {
			c.observe(resp.Header)
		}
		return err
	})
}

// Members lists the cluster's servers.
func (c *Client) Members(ctx context.Context) ([]Member, error) {
	var resp *coordpb.MembersResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Members(ctx, &coordpb.MembersRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return membersFromPB(resp.Members), nil
}

// AddMember adds a server (started with --join) to the cluster.
func (c *Client) AddMember(ctx context.Context, name, addr string, nonVoter bool) ([]Member, error) {
	var resp *coordpb.AddMemberResponse
	err := c.call(ctx, write, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.AddMember(ctx, &coordpb.AddMemberRequest{Name: name, Address: addr, NonVoter: nonVoter})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return membersFromPB(resp.Members), nil
}

// RemoveMember removes a server from the cluster.
func (c *Client) RemoveMember(ctx context.Context, name string) ([]Member, error) {
	var resp *coordpb.RemoveMemberResponse
	err := c.call(ctx, write, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.RemoveMember(ctx, &coordpb.RemoveMemberRequest{Name: name})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return membersFromPB(resp.Members), nil
}

// Status reports the connected server's view of the cluster.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	var resp *coordpb.StatusResponse
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) (err error) {
		resp, err = r.Status(ctx, &coordpb.StatusRequest{})
		return err
	})
	if err != nil {
		return nil, err
	}
	c.observe(resp.Header)
	return &Status{
		Name: resp.Name, State: resp.State, Leader: resp.Leader, Term: resp.Term,
		CommitIndex: resp.CommitIndex, AppliedIndex: resp.AppliedIndex, LastLogIndex: resp.LastLogIndex,
		Znodes: resp.Znodes, Members: membersFromPB(resp.Members),
	}, nil
}

// Snapshot streams a consistent snapshot of the tree (the format raft
// snapshots use) into w and returns the bytes written. It fails over like
// a read until the first byte arrives; a stream broken after that is an
// error, never a short success. ctx bounds the whole transfer.
func (c *Client) Snapshot(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := c.call(ctx, idempotent, func(ctx context.Context, r coordpb.CoordClient) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := r.Snapshot(ctx, &coordpb.SnapshotRequest{})
		if err != nil {
			return err
		}
		for {
			chunk, err := stream.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if n > 0 {
					mapped, _ := mapError(err)
					return &noRetry{fmt.Errorf("snapshot broken after %d bytes: %w", n, mapped)}
				}
				return err
			}
			m, err := w.Write(chunk.Data)
			n += int64(m)
			if err != nil {
				return &noRetry{err}
			}
		}
	})
	return n, err
}
