package coord

import (
	"context"
	"time"
)

// HoldWriteSlot takes one of s's write slots through the admission path,
// as a write request would, and returns its release (which, like a
// request's, folds the time the slot was held into the class's
// service-time average).
func HoldWriteSlot(s *Server) (release func(), err error) {
	return s.admit.acquire(context.Background(), s.admit.classes[classWrite])
}

// WriteServiceEstimate is s's service-time average of the write class.
func WriteServiceEstimate(s *Server) time.Duration {
	return s.admit.classes[classWrite].serviceEstimate()
}
