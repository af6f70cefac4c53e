#!/usr/bin/env bash
# Runs every benchmark (or the areas named: store inbound media outbound web
# backup relay scale). Each measures its own baseline in the same run; see
# BENCHMARKS.md. scale grows one file to 10M messages and takes hours, so it
# runs only when named; SCALE_ARGS passes flags (e.g. "-steps 0,1M -dur 20s").
set -euo pipefail
cd "$(dirname "$0")/.."
areas=("$@")
[ ${#areas[@]} -gt 0 ] || areas=(store inbound media outbound backup web relay)
for a in "${areas[@]}"; do
  echo "== $a ($(uptime | sed 's/.*load/load/'))"
  case "$a" in
    store)    go test ./bench/store/ -run '^$' -bench . -benchtime 3x ;;
    inbound)  go test ./bench/inbound/ -run '^$' -bench . -benchtime 1x ;;
    media)    go test ./bench/media/ -run '^$' -bench . -benchtime 10x -count 2 ;;
    outbound) go test ./bench/outbound/ -run '^$' -bench . -benchtime 3000x -count 3 ;;
    backup)   go test ./bench/backup/ -run '^$' -bench . -benchtime 1x ;;
    relay)    go test ./bench/relay/ -run '^$' -bench . -benchtime 1x -timeout 60m ;;
    web)      WEB_BENCH=1 go test ./bench/web/ -run TestWebLatency -v -timeout 60m ;;
    scale)    go run ./bench/scale ${SCALE_ARGS:-} ;;
    *) echo "unknown area $a (store inbound media outbound backup web relay scale)" >&2; exit 2 ;;
  esac
done
