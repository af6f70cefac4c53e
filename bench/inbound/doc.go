// Package inbound benchmarks the Infobip (CTLive IM channel) webhook of the
// built imchannel binary against two baselines measured in the same run:
//
//   - floor: a bare net/http handler that decodes the same JSON and stores
//     each message with plain bbolt DB.Batch (fsync on);
//   - ceiling: the same handler storing nothing.
//
// Run it with
//
//	go test ./bench/inbound/ -run '^$' -bench . -benchtime 1x
//
// INBOUND_N sets how many messages each phase posts (default 20000),
// INBOUND_CLIENTS the concurrency (default 64). The benchmark prints a table
// (msgs/s, p50, p99 per phase) and the ratios against the targets. The test
// TestInboundSmoke runs the same code with a few hundred messages (skipped
// with -short).
package inbound
