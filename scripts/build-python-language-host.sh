#!/usr/bin/env bash
# Build Pulumi's own Python language host from its unmodified source (shared/vendor/
# pulumi-language-python-1b594989.tar.gz, sha256 checked by scripts/vendor.sh) into
# ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin, beside the two scripts a Pulumi
# distribution ships with it, copied from the pulumi SDK module the host builds against:
#   pulumi-language-python          the host (Go), started by the engine for `runtime: python`
#   pulumi-language-python-exec     runs __main__.py under the project's virtualenv
#   pulumi-resource-pulumi-python   serves the program's dynamic providers (python -m pulumi.dynamic)
#
# The archive's go.mod points pkg/v3 and sdk/v3 at the monorepo's own directories; here they come
# from the Go module proxy at v3.274.1, the version of the CLI we build (tools/pulumi-cli), with
# the clipboard replace the monorepo uses. Nothing in the archive is edited but that go.mod, in a
# build copy; nothing built is committed.
#
# Idempotent: a binary whose stamp matches (archive checksum, this script) is kept; FORCE=1
# rebuilds. Environment: PULUMI_TOOLS_DIR, GO, VENDOR_DIR, FORCE.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$PROJECT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/bin"
BUILD_DIR="$TOOLS_DIR/build/pulumi-language-python"
ARCHIVE=pulumi-language-python-1b594989.tar.gz
COMMIT=1b594989
SDK_VERSION=v3.274.1
# Semver build metadata says what this is: the host at main after v3.259.0, commit 1b594989.
HOST_VERSION="v3.259.0+$COMMIT"
HOST_MODULE=github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3

say() { printf '[build-python-language-host] %s\n' "$*" >&2; }
die() { printf '[build-python-language-host] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=vendor.sh
. "$PROJECT_ROOT/scripts/vendor.sh"
# shellcheck source=find-go.sh
. "$PROJECT_ROOT/scripts/find-go.sh" 1.25.11

stamp="$(vendor_stamp "$SELF" "$ARCHIVE")"
stamp_file="$BIN/.pulumi-language-python.stamp"
if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN/pulumi-language-python" ] \
    && [ -x "$BIN/pulumi-language-python-exec" ] && [ -x "$BIN/pulumi-resource-pulumi-python" ] \
    && [ "$(cat "$stamp_file" 2>/dev/null)" = "$stamp" ]; then
  say "up to date: $BIN/pulumi-language-python ($HOST_VERSION); FORCE=1 rebuilds"
  exit 0
fi

start=$SECONDS
say "building Pulumi's Python language host at $COMMIT against pulumi $SDK_VERSION ($("$GO" version))"
vendor_unpack "$ARCHIVE" "$BUILD_DIR"
src="$BUILD_DIR/pulumi-language-python"
[ -f "$src/main.go" ] || die "$ARCHIVE has no pulumi-language-python/main.go"
(
  cd "$src"
  "$GO" mod edit \
    -dropreplace=github.com/pulumi/pulumi/pkg/v3 -dropreplace=github.com/pulumi/pulumi/sdk/v3 \
    -require=github.com/pulumi/pulumi/pkg/v3@$SDK_VERSION \
    -require=github.com/pulumi/pulumi/sdk/v3@$SDK_VERSION
  "$GO" mod tidy >&2
  mkdir -p "$BIN"
  CGO_ENABLED=0 "$GO" build -trimpath -o "$BIN/pulumi-language-python.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$HOST_VERSION" .
)
mv -f "$BIN/pulumi-language-python.tmp" "$BIN/pulumi-language-python"

# The exec script and the dynamic-provider shim ship in the SDK module (python/cmd, python/dist).
sdk_dir="$(cd "$src" && "$GO" list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)"
[ -f "$sdk_dir/python/cmd/pulumi-language-python-exec" ] \
  || die "no python/cmd/pulumi-language-python-exec in $sdk_dir"
install -m 0755 "$sdk_dir/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
install -m 0755 "$sdk_dir/python/dist/pulumi-resource-pulumi-python" \
  "$BIN/pulumi-resource-pulumi-python"
printf '%s\n' "$stamp" >"$stamp_file"
say "built $BIN/pulumi-language-python ($("$BIN/pulumi-language-python" -version)) in $((SECONDS - start)) s"
say "module $HOST_MODULE, exec script and shim from $sdk_dir"
