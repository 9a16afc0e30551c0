package tree

// EventType is the kind of a watch event.
type EventType int

// Event types, ZooKeeper's.
const (
	EventNodeCreated EventType = iota + 1
	EventNodeDeleted
	EventNodeDataChanged
	// EventNodeChildrenChanged fires on the parent when a child is added
	// or removed.
	EventNodeChildrenChanged
)

func (t EventType) String() string {
	switch t {
	case EventNodeCreated:
		return "created"
	case EventNodeDeleted:
		return "deleted"
	case EventNodeDataChanged:
		return "changed"
	case EventNodeChildrenChanged:
		return "children"
	}
	return "unknown"
}

// Event is one change, produced by Apply, for watches.
type Event struct {
	Type EventType
	Path string
	Zxid uint64
	// acl is the ACL of the node the event is about, as of the event (for
	// a delete: the ACL it had), so watch delivery can filter by READ
	// without the node.
	acl []aclEntry
}

// Readable reports whether c may READ the node the event is about (and
// so may see the event, path included).
func (e Event) Readable(c *Caller) bool { return allowed(e.acl, PermRead, c) }
