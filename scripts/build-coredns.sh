#!/usr/bin/env bash
# Build CoreDNS from the Go module proxy, for the local Kubernetes cluster's DNS
# (scripts/local-kubernetes.sh): there is no registry here to pull the coredns image from, and
# the cluster runs it as a process on the control plane's address.
#
# COREDNS_VERSION defaults to v1.15.0, the newest release on the proxy; its go.mod says
# `go 1.26.0`, which the installed Go (1.26.x) builds without a toolchain download. Its go.mod has
# no replace directives (nor had any release since v1.11), so `go install module@version` builds
# it with upstream's own go.sum and no wrapper module; the script refuses a version whose go.mod
# has replace directives, which `go install` would silently need and ignore.
#
# Built like upstream's Makefile: CGO_ENABLED=0 (a static binary), -tags grpcnotrace, the default
# plugin set of the release's plugin.cfg (kubernetes, template, cache, errors, bind, ...).
# The module zip has no git metadata, so coremain.GitCommit records the module version instead.
#
# Into ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin/coredns; nothing is written into the
# repository. Idempotent: a stamp file records the version built (FORCE=1 rebuilds). Uses Go's
# normal GOMODCACHE and GOCACHE.
set -euo pipefail

TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
VERSION="${COREDNS_VERSION:-v1.15.0}"
MODULE=github.com/coredns/coredns
BIN_DIR="$TOOLS_DIR/bin"
BIN="$BIN_DIR/coredns"
STAMP="$BIN_DIR/.coredns.version"
BUILD_DIR="$TOOLS_DIR/build/coredns-$VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
# What the local cluster's Corefile uses; checked before the new binary replaces the old one.
REQUIRED_PLUGINS=(kubernetes template cache errors bind)

say() { printf '[build-coredns] %s\n' "$*"; }
die() { printf '[build-coredns] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  say "up to date: coredns $VERSION in $BIN_DIR; FORCE=1 rebuilds"
  exit 0
fi
command -v "$GO" >/dev/null 2>&1 || die "no Go toolchain"

start=$(date +%s)
json="$("$GO" mod download -json "$MODULE@$VERSION")" || die "cannot download $MODULE@$VERSION"
gomod="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[ -f "$gomod" ] || die "no go.mod for $MODULE@$VERSION in: $json"
if grep -Eq '^[[:space:]]*replace\b|=>' "$gomod"; then
  die "$MODULE@$VERSION's go.mod has replace directives; \`go install\` cannot build it as is"
fi
say "building $MODULE@$VERSION (go directive $(sed -n 's/^go \(.*\)$/\1/p' "$gomod"), $("$GO" version | cut -d' ' -f3))"

rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR" "$BIN_DIR"
# GOBIN: install into the build dir first, so a failed build never leaves a half-written binary.
# GOTOOLCHAIN=local: fail clearly on a too-new go directive instead of downloading a toolchain.
(
  cd "$BUILD_DIR"
  CGO_ENABLED=0 GOBIN="$BUILD_DIR" GOTOOLCHAIN=local "$GO" install -trimpath -tags grpcnotrace \
    -ldflags "-s -w -X $MODULE/coremain.GitCommit=$VERSION" "$MODULE@$VERSION"
)
built="$BUILD_DIR/coredns"
reported="$("$built" -version)"
grep -qx "CoreDNS-${VERSION#v}" <<<"$reported" || die "$built -version says: $reported"
plugins="$("$built" -plugins)"
for plugin in "${REQUIRED_PLUGINS[@]}"; do
  grep -qx "$plugin" <<<"$plugins" || die "$built has no '$plugin' plugin"
done
mv -f "$built" "$BIN"
printf '%s\n' "$VERSION" >"$STAMP"
say "built coredns $VERSION in $(( $(date +%s) - start ))s: $("$BIN" -version | head -1)"
