#!/usr/bin/env bash
# Build the pulumi-resource-docker provider plugin (the one the pulumi_docker Python SDK asks the
# engine for) from Go modules only, into ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/providers.
# scripts/install-pulumi.sh then installs it into Pulumi's plugin cache (`pulumi plugin install
# --file`), so the engine finds it as an installed plugin, not as an ambient one on PATH.
#
# Why this is a script and not a plain `go build`: pulumi-docker's own provider module is not on
# the Go module proxy, so tools/pulumi-docker-provider carries our own tfbridge mapping. The
# Terraform provider it bridges keeps its constructor in an `internal` package that no other module
# may import, so we copy that module out of the module cache into a writable build directory, add
# our one-function shim package to the copy, and build our wrapper against it via the wrapper's
# `replace ... => ../upstream`. Nothing is written into the repository.
#
# Idempotent: when the binary exists and is newer than the wrapper sources and this script, it
# only says so. FORCE=1 rebuilds anyway. Uses Go's normal GOMODCACHE and GOCACHE, so a rebuild
# after a source change is incremental.
#
# Environment: PULUMI_TOOLS_DIR (see above), GO (default: go on PATH, else /usr/local/go/bin/go),
# FORCE=1, PULUMI_DOCKER_VERSION (version the plugin reports; default 5.2.0, which must match
# pulumi-docker in requirements.txt).
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$PROJECT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
WRAPPER_DIR="$PROJECT_ROOT/tools/pulumi-docker-provider"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/providers/pulumi-resource-docker"
BUILD_DIR="$TOOLS_DIR/build/pulumi-docker-provider"
PLUGIN_VERSION="${PULUMI_DOCKER_VERSION:-5.2.0}"

# The Terraform provider as the proxy serves it. Its go.mod names itself
# github.com/terraform-providers/terraform-provider-docker, which is the path our go.mod replaces.
# Bumping this means: check internal/provider.New still has the same signature, then rerun
# `go mod tidy` in a build copy of the wrapper and commit the new go.mod/go.sum.
UPSTREAM_MODULE=github.com/kreuzwerker/terraform-provider-docker
UPSTREAM_VERSION=v0.0.0-20260916201441-96d331c98ff4

# no_compose: upstream's own switch that drops its docker_compose resource (a Plugin Framework
# resource we do not bridge) and the docker/compose dependency tree with it.
BUILD_TAGS=no_compose

say() { printf '[build-docker-provider] %s\n' "$*"; }
die() { printf '[build-docker-provider] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=find-go.sh
. "$(dirname "${BASH_SOURCE[0]}")/find-go.sh" 1.25.11

SOURCES=(
  "$WRAPPER_DIR/go.mod"
  "$WRAPPER_DIR/go.sum"
  "$WRAPPER_DIR/main.go"
  "$WRAPPER_DIR/_upstream_overlay/shim/shim.go"
  "$SELF"
)
for src in "${SOURCES[@]}"; do
  [ -f "$src" ] || die "missing source file $src"
done

up_to_date() {
  [ -x "$BIN" ] || return 1
  local src
  for src in "${SOURCES[@]}"; do
    [ "$BIN" -nt "$src" ] || return 1
  done
  # A binary built for another version would be refused by the engine's plugin lookup.
  [ "$("$BIN" -version 2>/dev/null)" = "$PLUGIN_VERSION" ]
}

if [ "${FORCE:-0}" != 1 ] && up_to_date; then
  say "up to date: $BIN (version $PLUGIN_VERSION); FORCE=1 rebuilds"
  exit 0
fi

start=$(date +%s)
say "using $("$GO" version)"

# The upstream module's files in the module cache are read-only; `Dir` is where they are.
say "fetching $UPSTREAM_MODULE@$UPSTREAM_VERSION"
download_json="$("$GO" mod download -json "$UPSTREAM_MODULE@$UPSTREAM_VERSION")" \
  || die "go mod download $UPSTREAM_MODULE@$UPSTREAM_VERSION failed: $download_json"
upstream_src="$(printf '%s\n' "$download_json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
[ -n "$upstream_src" ] && [ -f "$upstream_src/go.mod" ] \
  || die "could not find the downloaded module's directory in: $download_json"

# A fresh build directory each time, so no file from an older upstream version can linger.
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR/wrapper" "$(dirname "$BIN")"
cp -R "$upstream_src" "$BUILD_DIR/upstream"
chmod -R u+w "$BUILD_DIR/upstream"
cp -R "$WRAPPER_DIR/_upstream_overlay/." "$BUILD_DIR/upstream/"
cp "$WRAPPER_DIR/go.mod" "$WRAPPER_DIR/go.sum" "$WRAPPER_DIR/main.go" "$BUILD_DIR/wrapper/"

say "building $BIN (tags: $BUILD_TAGS)"
tmp_bin="$BIN.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
(
  cd "$BUILD_DIR/wrapper"
  # -mod=readonly: the committed go.sum must already be complete, so a build never edits it.
  "$GO" build -mod=readonly -trimpath -tags "$BUILD_TAGS" \
    -ldflags "-s -w -X main.version=$PLUGIN_VERSION" -o "$tmp_bin" .
)
reported="$("$tmp_bin" -version)"
[ "$reported" = "$PLUGIN_VERSION" ] \
  || die "built binary reports version '$reported', expected '$PLUGIN_VERSION'"
mv -f "$tmp_bin" "$BIN"

elapsed=$(( $(date +%s) - start ))
size_mib=$(( $(stat -c %s "$BIN") / 1024 / 1024 ))
say "built $BIN: docker provider $PLUGIN_VERSION bridging $UPSTREAM_MODULE@$UPSTREAM_VERSION"
say "took ${elapsed}s, ${size_mib} MiB"
