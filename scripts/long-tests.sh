#!/usr/bin/env bash
# The long forms of the reliability and security proofs (TESTING.md):
# 20 crash iterations, a bigger outage and 60 power-loss rounds
# (IMCHANNEL_POWERLOSS_ROUNDS, at least 50 for the figures) against a
# race-built binary, every other e2e test once, then each fuzz target for
# FUZZTIME (default 5m), one after another with one worker so a shared
# machine stays usable. The power-loss test needs FUSE (fuse3, root).
#
#   scripts/long-tests.sh            # everything
#   FUZZTIME=30s scripts/long-tests.sh
#   SKIP_FUZZ=1 scripts/long-tests.sh
#   IMCHANNEL_POWERLOSS_ROUNDS=200 SKIP_FUZZ=1 scripts/long-tests.sh
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-5m}

# The whole verbose output goes to a file: the summary below leaves out
# the lines (assertion details, panics) that say why a test failed.
E2ELOG=${E2ELOG:-$(mktemp -t imchannel-e2e-long.XXXXXX.log)}
echo "== e2e, long form (IMCHANNEL_LONG=1, race-built binary); full output: $E2ELOG"
IMCHANNEL_LONG=1 IMCHANNEL_E2E_RACE=1 go test -race -count=1 -timeout 60m -v ./e2e/ 2>&1 | tee "$E2ELOG" |
  grep -E '^(=== RUN|--- |ok|FAIL|PASS)|_test\.go:[0-9]+: [a-z]' ||
  { echo "e2e failed; see $E2ELOG" >&2; exit 1; }

if [ "${SKIP_FUZZ:-}" = 1 ]; then exit 0; fi
for target in config:FuzzParse webhook:FuzzInfobip webhook:FuzzCMMO webhook:FuzzCMStatus \
              outbound:FuzzSendAPI outbound:FuzzTemplate; do
  pkg=${target%%:*} name=${target#*:}
  echo "== fuzz ./$pkg $name for $FUZZTIME"
  go test "./$pkg/" -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" -parallel 1 2>&1 | tail -n 3
done
