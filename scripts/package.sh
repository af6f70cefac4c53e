#!/usr/bin/env bash
# Builds imchannel's Debian package and RPM into dist/:
#   scripts/package.sh            # both, for this machine's architecture
#   scripts/package.sh deb        # only the .deb (rpm likewise)
# GOARCH=arm64 scripts/package.sh cross-builds; IMCHANNEL_VERSION overrides
# the version (default 0.1.0.<commit time>, which sorts upgrades in order).
# nfpm runs as a Go tool from the module proxy: nothing else to install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2
formats=("$@")
[ ${#formats[@]} -gt 0 ] || formats=(deb rpm)

arch=${GOARCH:-$(go env GOARCH)}
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
when=$(git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
version=${IMCHANNEL_VERSION:-0.1.0.$when}
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then
	commit="$commit-dirty"
fi

mkdir -p dist
echo "package: building dist/imchannel $version ($commit) for linux/$arch" >&2
CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
	-ldflags "-s -w -X main.Version=$version+$commit" -o dist/imchannel .

for f in "${formats[@]}"; do
	IMCHANNEL_ARCH=$arch IMCHANNEL_VERSION=$version TZ=UTC \
		go run "$NFPM" package --config packaging/nfpm.yaml --packager "$f" --target dist/ >&2
done
ls -1 dist/imchannel[_-]*."${formats[0]}" >/dev/null
for f in "${formats[@]}"; do
	ls -1t dist/imchannel[_-]*".$f" | head -1
done
