#!/usr/bin/env bash
# Build the server engines that no package here serves, from the vendored sources
# (../shared/vendor, see its SOURCES.md): Redis 7.2.6 (the last BSD-licensed Redis line) and
# Valkey 8.0.1. Debian's redis-server (7.0.15) is the third engine of the matrix and comes from
# apt (scripts/setup-test-env.sh).
#
# Each archive's SHA-256 is checked against the pin below before anything is unpacked; a mismatch
# stops the build. Built as upstream documents, with TLS: `make BUILD_TLS=yes` (OpenSSL from
# libssl-dev), then `make install PREFIX=...`, so each engine gets its own tree:
#
#   ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/engines/redis-7.2.6/bin/redis-server, ...
#   ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/engines/valkey-8.0.1/bin/valkey-server, ...
#
# Valkey's install also makes the redis-* names as links to its own binaries (its Makefile's
# USE_REDIS_SYMLINKS), the way the official valkey image does; code never relies on either name
# from an image tag: it asks the server (clusterops/engine.py).
#
# Nothing is written into the repository. Idempotent: a stamp per engine records the archive's
# checksum (FORCE=1 rebuilds). ENGINES="redis-7.2.6" builds a subset.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENDOR_DIR="${VENDOR_DIR:-$ROOT/../shared/vendor}"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
ENGINES_DIR="$TOOLS_DIR/engines"
JOBS="${JOBS:-$(nproc)}"

declare -A SHA256=(
  [redis-7.2.6]=f861f87f962faad33d690238e7d37e8d1b5d1cd40955921b9e645bb4a0287822
  [valkey-8.0.1]=bccb382a0f583fb419526348ed07c3d19e0b6fe8f5492aa3b3037793016ea478
)
declare -A SERVER_BINARY=([redis-7.2.6]=redis-server [valkey-8.0.1]=valkey-server)

say() { printf '[build-engines] %s\n' "$*"; }
die() { printf '[build-engines] ERROR: %s\n' "$*" >&2; exit 1; }

build_one() {
  local name="$1" archive="$VENDOR_DIR/$1.tar.gz" prefix="$ENGINES_DIR/$1"
  local stamp="$prefix/.archive-sha256" want="${SHA256[$1]}"
  if [ "${FORCE:-0}" != 1 ] && [ -x "$prefix/bin/${SERVER_BINARY[$1]}" ] \
    && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    say "up to date: $name in $prefix; FORCE=1 rebuilds"
    return
  fi
  [ -f "$archive" ] || die "missing $archive (the vendored sources: ../shared/vendor/SOURCES.md)"
  local got
  got="$(sha256sum "$archive" | cut -d' ' -f1)"
  [ "$got" = "$want" ] || die "$archive: sha256 $got, SOURCES.md pins $want; refusing to build it"
  command -v make >/dev/null && command -v gcc >/dev/null || die "needs make and gcc (apt-get install build-essential)"
  [ -f /usr/include/openssl/ssl.h ] || die "BUILD_TLS needs OpenSSL headers: apt-get install libssl-dev"

  local build="$TOOLS_DIR/build/$name" start
  start=$(date +%s)
  rm -rf "$build" "$prefix.partial"
  mkdir -p "$build"
  tar -xzf "$archive" -C "$build" --strip-components=1
  say "building $name with TLS ($JOBS jobs)"
  # Default allocator (the bundled jemalloc), as upstream and the official images build it.
  make -C "$build" -j"$JOBS" BUILD_TLS=yes >"$build.log" 2>&1 \
    || { tail -30 "$build.log" >&2; die "make failed for $name (whole log: $build.log)"; }
  make -C "$build" install PREFIX="$prefix.partial" BUILD_TLS=yes >>"$build.log" 2>&1 \
    || { tail -30 "$build.log" >&2; die "make install failed for $name (whole log: $build.log)"; }
  "$prefix.partial/bin/${SERVER_BINARY[$1]}" --version | grep -q "build=" \
    || die "$name: the built server does not report a version"
  echo "$want" >"$prefix.partial/.archive-sha256"
  rm -rf "$prefix" && mv "$prefix.partial" "$prefix"
  rm -rf "$build"
  say "built $name in $(( $(date +%s) - start )) s: $("$prefix/bin/${SERVER_BINARY[$1]}" --version)"
}

mkdir -p "$ENGINES_DIR"
for name in ${ENGINES:-redis-7.2.6 valkey-8.0.1}; do
  [ -n "${SHA256[$name]:-}" ] || die "unknown engine $name (known: ${!SHA256[*]})"
  build_one "$name"
done
