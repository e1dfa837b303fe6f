#!/usr/bin/env bash
# Build the official pulumi-docker provider plugin (pulumi-resource-docker 5.2.0) from its
# unmodified sources in shared/vendor/ (sha256 checked by scripts/vendor.sh), the way the
# pulumi-docker repository builds it:
#   pulumi-docker-237b7899.tar.gz            provider/ and patches/ at the 5.2.0 pre-release commit
#   terraform-provider-docker-5074970c.tar.gz the kreuzwerker commit pulumi-docker pins as `upstream`
# `upstream` is unpacked beside provider/, committed to a throwaway git repository and patched with
# pulumi-docker's own patches (`git am`), as its `make upstream` does; then the schema is
# versioned (`VERSION=5.2.0 go run ./generate.go`) and the provider built with `-tags no_compose`
# (upstream's switch that leaves out docker_compose, which pulumi-docker does not map).
# Dependencies come from the Go module proxy. The binary lands in
# ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/providers; scripts/install-pulumi.sh installs
# it into Pulumi's plugin cache. Nothing built is committed.
#
# Idempotent: a binary whose stamp matches (archive checksums, this script) is kept; FORCE=1
# rebuilds. Environment: PULUMI_TOOLS_DIR, GO, VENDOR_DIR, FORCE, PULUMI_DOCKER_VERSION (the
# version the plugin reports; must match pulumi-docker in requirements.txt).
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$PROJECT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/providers/pulumi-resource-docker"
BUILD_DIR="$TOOLS_DIR/build/pulumi-docker"
PLUGIN_VERSION="${PULUMI_DOCKER_VERSION:-5.2.0}"
PROVIDER_ARCHIVE=pulumi-docker-237b7899.tar.gz
UPSTREAM_ARCHIVE=terraform-provider-docker-5074970c.tar.gz

say() { printf '[build-docker-provider] %s\n' "$*" >&2; }
die() { printf '[build-docker-provider] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=vendor.sh
. "$PROJECT_ROOT/scripts/vendor.sh"
# shellcheck source=find-go.sh
. "$PROJECT_ROOT/scripts/find-go.sh" 1.25.11

stamp="$(vendor_stamp "$SELF" "$PROVIDER_ARCHIVE" "$UPSTREAM_ARCHIVE")-$PLUGIN_VERSION"
if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ "$(cat "$BIN.stamp" 2>/dev/null)" = "$stamp" ]; then
  say "up to date: $BIN (version $PLUGIN_VERSION); FORCE=1 rebuilds"
  exit 0
fi

start=$SECONDS
say "building pulumi-docker $PLUGIN_VERSION from $PROVIDER_ARCHIVE + $UPSTREAM_ARCHIVE ($("$GO" version))"
vendor_unpack "$PROVIDER_ARCHIVE" "$BUILD_DIR"
repo="$BUILD_DIR/pulumi-docker"
vendor_unpack "$UPSTREAM_ARCHIVE" "$BUILD_DIR/upstream-archive"
mv "$BUILD_DIR/upstream-archive/terraform-provider-docker" "$repo/upstream"
rmdir "$BUILD_DIR/upstream-archive"
(
  cd "$repo/upstream"
  # `git am` needs a repository; identity and dates are fixed so the build is repeatable.
  export GIT_AUTHOR_NAME=build GIT_AUTHOR_EMAIL=build@localhost GIT_COMMITTER_NAME=build \
    GIT_COMMITTER_EMAIL=build@localhost GIT_AUTHOR_DATE=2026-06-18T00:00:00Z \
    GIT_COMMITTER_DATE=2026-06-18T00:00:00Z
  git init -q
  git add -A
  git commit -q -m "terraform-provider-docker 5074970c (unmodified archive)"
  git am -q ../patches/*.patch
)
(
  cd "$repo/provider/cmd/pulumi-resource-docker"
  VERSION="$PLUGIN_VERSION" "$GO" run ./generate.go
  # The engine asks the plugin its version over gRPC (GetPluginInfo; tests/e2e checks it); the
  # schema the binary embeds carries the same version, which is what can be checked here.
  grep -q "\"version\":\"$PLUGIN_VERSION\"" schema-embed.json \
    || die "generate.go did not write version $PLUGIN_VERSION into schema-embed.json"
  mkdir -p "$(dirname "$BIN")"
  CGO_ENABLED=0 "$GO" build -trimpath -tags no_compose -o "$BIN.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi-docker/provider/v5/pkg/version.Version=$PLUGIN_VERSION" .
)
mv -f "$BIN.tmp" "$BIN"
printf '%s\n' "$stamp" >"$BIN.stamp"
say "built $BIN ($PLUGIN_VERSION, $(( $(stat -c %s "$BIN") / 1024 / 1024 )) MiB) in $((SECONDS - start)) s"
