package lease

// Log attribute keys, used with the Config.Logger.
const (
	logNode     = "node"
	logGroup    = "group"
	logResource = "resource"
	logEpoch    = "epoch"
	logPeer     = "peer"
	logReason   = "reason"
	logErr      = "err"
)
