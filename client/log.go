package client

// Log attribute keys, shared by every log line of the package.
const (
	keyEndpoint = "endpoint"
	keyAttempt  = "attempt"
	keyErr      = "err"
	keySession  = "session"
	keyTimeout  = "timeout"
)
