package main

import (
	"fmt"
	"time"

	gometrics "github.com/armon/go-metrics"
	gmprom "github.com/armon/go-metrics/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// raftMetrics routes hashicorp/raft's internal telemetry (armon/go-metrics:
// raft.leader.dispatchLog, raft.rpc.appendEntries.storeLogs, raft.commitTime,
// raft.fsm.apply, raft.replication.appendEntries.rpc, ...) into a Prometheus
// collector that coordd registers on /metrics beside coord's own (raft_*, raft_boltdb_*). go-metrics
// keeps one process-wide sink, which is why this lives in the command and
// not in package coord (in-process test clusters share a process).
func raftMetrics() (prometheus.Collector, error) {
	sink, err := gmprom.NewPrometheusSinkFrom(gmprom.PrometheusOpts{
		Expiration: time.Minute,
		Registerer: prometheus.NewRegistry(), // never gathered: coordd registers the sink itself
		Name:       "coord_raft_internal",
	})
	if err != nil {
		return nil, fmt.Errorf("raft metrics: %w", err)
	}
	conf := gometrics.DefaultConfig("")
	conf.EnableHostname = false
	conf.EnableRuntimeMetrics = false // the Go collector already serves these
	if _, err := gometrics.NewGlobal(conf, sink); err != nil {
		return nil, fmt.Errorf("raft metrics: %w", err)
	}
	return sink, nil
}
