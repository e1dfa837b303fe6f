#!/usr/bin/env bash
# Build kube-network-policies (sigs.k8s.io/kube-network-policies, Kubernetes SIG Network's
# NetworkPolicy enforcer) from the Go module proxy, for the local Kubernetes cluster
# (scripts/local-kubernetes.sh): the bridge CNI plugin enforces no NetworkPolicy, and there is
# no registry to pull a policy engine's image from.
#
# How it enforces: nftables rules in each node's network namespace send the first packet of
# every new connection to or from a pod that a policy selects to an NFQUEUE; the process
# evaluates the policies (from the API server) and accepts or drops it. One process per node.
#
# KUBE_NETWORK_POLICIES_VERSION defaults to v0.8.0, the newest release on the proxy; its go.mod
# says `go 1.23.0` and has no replace directives, so `go install module/cmd@version` builds it
# with upstream's own go.sum. CGO_ENABLED=0 like upstream's Dockerfile.
#
# Into ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin/kube-network-policies; nothing is
# written into the repository. Idempotent: a stamp file records the version built (FORCE=1
# rebuilds). Uses Go's normal GOMODCACHE and GOCACHE.
set -euo pipefail

TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
VERSION="${KUBE_NETWORK_POLICIES_VERSION:-v0.8.0}"
MODULE=sigs.k8s.io/kube-network-policies
BIN_DIR="$TOOLS_DIR/bin"
BIN="$BIN_DIR/kube-network-policies"
STAMP="$BIN_DIR/.kube-network-policies.version"
BUILD_DIR="$TOOLS_DIR/build/kube-network-policies-$VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

say() { printf '[build-kube-network-policies] %s\n' "$*"; }
die() { printf '[build-kube-network-policies] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$VERSION" ]; then
  say "up to date: kube-network-policies $VERSION in $BIN_DIR; FORCE=1 rebuilds"
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
say "building $MODULE@$VERSION ($("$GO" version | cut -d' ' -f3))"

rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR" "$BIN_DIR"
# GOBIN: install into the build dir first, so a failed build never leaves a half-written binary.
(
  cd "$BUILD_DIR"
  CGO_ENABLED=0 GOBIN="$BUILD_DIR" GOTOOLCHAIN=local "$GO" install -trimpath -ldflags "-s -w" \
    "$MODULE/cmd@$VERSION"
)
built="$BUILD_DIR/cmd"
[ -x "$built" ] || die "go install left no binary in $BUILD_DIR"
"$built" -h 2>&1 | grep -q -- "-nfqueue-id" || die "$built -h does not describe the expected flags"
mv -f "$built" "$BIN"
printf '%s\n' "$VERSION" >"$STAMP"
say "built kube-network-policies $VERSION in $(( $(date +%s) - start ))s"
