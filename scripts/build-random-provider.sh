#!/usr/bin/env bash
# Build the official pulumi-random provider plugin (pulumi-resource-random) from its unmodified
# source in shared/vendor/ (pulumi-random-f64d8726.tar.gz, sha256 checked by scripts/vendor.sh):
# the schema versioned by its own generate.go, then `go build`, as the pulumi-random repository
# builds it. Commit f64d8726 is the one that builds here (its tag v4.21.1 needs two modules the
# proxy refuses); the plugin reports the version requirements.txt pins for the pulumi-random
# Python SDK, since the engine loads exactly the version the SDK names.
# Dependencies come from the Go module proxy. The binary lands in
# ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/providers; scripts/install-pulumi.sh installs
# it into Pulumi's plugin cache. Nothing built is committed.
#
# Idempotent: a binary whose stamp matches (archive checksum, this script, version) is kept;
# FORCE=1 rebuilds. Environment: PULUMI_TOOLS_DIR, GO, VENDOR_DIR, FORCE, PULUMI_RANDOM_VERSION.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$PROJECT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/providers/pulumi-resource-random"
BUILD_DIR="$TOOLS_DIR/build/pulumi-random"
PLUGIN_VERSION="${PULUMI_RANDOM_VERSION:?the version to build (requirements.txt pins pulumi-random)}"
ARCHIVE=pulumi-random-f64d8726.tar.gz

say() { printf '[build-random-provider] %s\n' "$*" >&2; }
die() { printf '[build-random-provider] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=vendor.sh
. "$PROJECT_ROOT/scripts/vendor.sh"
# shellcheck source=find-go.sh
. "$PROJECT_ROOT/scripts/find-go.sh" 1.25.11

stamp="$(vendor_stamp "$SELF" "$ARCHIVE")-$PLUGIN_VERSION"
if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$BIN.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "up to date: $BIN (version $PLUGIN_VERSION); FORCE=1 rebuilds"
  exit 0
fi

start=$SECONDS
say "building pulumi-random $PLUGIN_VERSION from $ARCHIVE ($("$GO" version))"
vendor_unpack "$ARCHIVE" "$BUILD_DIR"
(
  cd "$BUILD_DIR/pulumi-random/provider/cmd/pulumi-resource-random"
  VERSION="$PLUGIN_VERSION" "$GO" run ./generate.go
  mkdir -p "$(dirname "$BIN")"
  CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$PLUGIN_VERSION" .
)
mv -f "$BIN.tmp" "$BIN"
printf '%s\n' "$stamp" >"$BIN.stamp"
say "built $BIN ($PLUGIN_VERSION, $(( $(stat -c %s "$BIN") / 1024 / 1024 )) MiB) in $((SECONDS - start)) s"
