#!/usr/bin/env bash
# Build the pulumi-resource-kubernetes provider plugin (the one the pulumi_kubernetes Python SDK
# asks the engine for) from Go modules only, into
# ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/providers. scripts/install-pulumi.sh then
# installs it into Pulumi's plugin cache (`pulumi plugin install --file`).
#
# What the module proxy serves, and why this is more than `go build`:
# - pulumi-kubernetes' provider module is served only as one pseudo-version (no release tags);
#   it is the commit of 2026-01-15, one day before the v4.25.0 release, so the plugin reports
#   4.25.0, the version requirements.txt pins for the Python SDK (the engine insists on exactly
#   the version the SDK names).
# - Its go.mod replaces github.com/pulumi/pulumi-kubernetes/sdk/v4 with `../sdk` (the monorepo's
#   SDK directory), which is not in the module zip. A dependency's replace would be ignored, but
#   here we build the provider module itself as the main module, in a writable copy with the SDK
#   module (sdk/v4.25.0, served with a tag) copied beside it as ../sdk. Its own go.sum is used.
# - main.go embeds schema-embed.json and terraform-mapping-embed.json, which upstream generates
#   (`go generate`: schema.json with the version set, both re-serialized compactly) and does
#   not commit. We generate them the same way, with python3's json module.
#
# Idempotent: when the binary exists, reports the wanted version and is newer than this script,
# it only says so. FORCE=1 rebuilds anyway. Uses Go's normal GOMODCACHE and GOCACHE.
#
# Environment: PULUMI_TOOLS_DIR (see above), GO (default: go on PATH, else /usr/local/go/bin/go),
# FORCE=1, PULUMI_KUBERNETES_VERSION (version the plugin reports; default 4.25.0).
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$PROJECT_ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/providers/pulumi-resource-kubernetes"
BUILD_DIR="$TOOLS_DIR/build/pulumi-kubernetes-provider"
PLUGIN_VERSION="${PULUMI_KUBERNETES_VERSION:-4.25.0}"
PYTHON="${PYTHON:-python3}"

PROVIDER_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
PROVIDER_VERSION=v4.0.0-20260115033456-f47bc2d6f199
SDK_MODULE=github.com/pulumi/pulumi-kubernetes/sdk/v4
SDK_VERSION=v4.25.0
MAIN_PACKAGE=./cmd/pulumi-resource-kubernetes

say() { printf '[build-kubernetes-provider] %s\n' "$*"; }
die() { printf '[build-kubernetes-provider] ERROR: %s\n' "$*" >&2; exit 1; }

# shellcheck source=find-go.sh
. "$(dirname "${BASH_SOURCE[0]}")/find-go.sh" 1.24

# The engine asks a plugin for its version over gRPC, not with a flag; the version linked in
# is printed by the binary only through the schema, so the build records it beside the binary.
# The stamp also names this script's digest (not its mtime: a fresh clone's files are all new,
# and CI would rebuild the 7-minute provider every run).
STAMP="$BIN.version"
STAMP_LINE="$PLUGIN_VERSION $PROVIDER_VERSION $(sha256sum "$SELF" | cut -c1-16)"
up_to_date() {
  [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_LINE" ]
}

if [ "${FORCE:-0}" != 1 ] && up_to_date; then
  say "up to date: $BIN (version $PLUGIN_VERSION from $PROVIDER_MODULE@$PROVIDER_VERSION); FORCE=1 rebuilds"
  exit 0
fi

start=$(date +%s)
say "using $("$GO" version)"

module_dir() {  # the read-only directory of a downloaded module in the module cache
  local json dir
  json="$("$GO" mod download -json "$1@$2")" || die "go mod download $1@$2 failed: $json"
  dir="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')"
  [ -n "$dir" ] && [ -f "$dir/go.mod" ] || die "no module directory for $1@$2 in: $json"
  printf '%s\n' "$dir"
}

say "fetching $PROVIDER_MODULE@$PROVIDER_VERSION and $SDK_MODULE@$SDK_VERSION"
provider_src="$(module_dir "$PROVIDER_MODULE" "$PROVIDER_VERSION")"
sdk_src="$(module_dir "$SDK_MODULE" "$SDK_VERSION")"
grep -q "^replace $SDK_MODULE => ../sdk$" "$provider_src/go.mod" \
  || die "$PROVIDER_MODULE@$PROVIDER_VERSION no longer replaces $SDK_MODULE with ../sdk: revisit this script"

# A fresh build directory each time, so no file from another version can linger.
rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR" "$(dirname "$BIN")"
cp -R "$provider_src" "$BUILD_DIR/provider"
cp -R "$sdk_src" "$BUILD_DIR/sdk"
chmod -R u+w "$BUILD_DIR"

say "generating the embedded schema (version $PLUGIN_VERSION) and terraform mapping"
(
  cd "$BUILD_DIR/provider/${MAIN_PACKAGE#./}"
  VERSION="$PLUGIN_VERSION" "$PYTHON" - <<'PY'
import json, os
# Upstream's generate.go: schema.json with .version set, both files re-marshalled compactly.
schema = json.load(open("schema.json"))
schema["version"] = os.environ["VERSION"]
json.dump(schema, open("schema-embed.json", "w"), separators=(",", ":"))
mapping = json.load(open("terraform-mapping.json"))
json.dump(mapping, open("terraform-mapping-embed.json", "w"), separators=(",", ":"))
PY
)

say "building $BIN"
tmp_bin="$BIN.tmp.$$"
trap 'rm -f "$tmp_bin"' EXIT
(
  cd "$BUILD_DIR/provider"
  # -mod=readonly: upstream's go.sum must already be complete, so a build never edits it.
  "$GO" build -mod=readonly -trimpath \
    -ldflags "-s -w -X $PROVIDER_MODULE/pkg/version.Version=$PLUGIN_VERSION" \
    -o "$tmp_bin" "$MAIN_PACKAGE"
)
# The schema the engine will read must carry the version the SDK asks for.
embedded="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
  "$BUILD_DIR/provider/${MAIN_PACKAGE#./}/schema-embed.json")"
[ "$embedded" = "$PLUGIN_VERSION" ] || die "embedded schema says $embedded, expected $PLUGIN_VERSION"
mv -f "$tmp_bin" "$BIN"
printf '%s\n' "$STAMP_LINE" >"$STAMP"

elapsed=$(( $(date +%s) - start ))
size_mib=$(( $(stat -c %s "$BIN") / 1024 / 1024 ))
say "built $BIN: kubernetes provider $PLUGIN_VERSION from $PROVIDER_MODULE@$PROVIDER_VERSION"
say "took ${elapsed}s, ${size_mib} MiB"
