#!/usr/bin/env bash
# Install what `pulumi preview/up/destroy` of this project needs where no Pulumi distribution can
# be downloaded, building each part from source, pinned:
#   pulumi                          the CLI and engine, from its Go module (tools/pulumi-cli pins
#                                   the version)
#   pulumi-language-python          Pulumi's own Python language host, with the exec script and
#   pulumi-language-python-exec     the dynamic-provider shim it ships with
#   pulumi-resource-pulumi-python   (scripts/build-python-language-host.sh)
#   pulumi-resource-docker          the official pulumi-docker provider
#                                   (scripts/build-docker-provider.sh)
#   pulumi-resource-random          the official pulumi-random provider
#                                   (scripts/build-random-provider.sh)
#   pulumi-resource-kubernetes      the official pulumi-kubernetes provider
#                                   (scripts/build-kubernetes-provider.sh): the language host makes
#                                   every stack require it once the SDK is installed
# The host and the docker and random providers build from the unmodified source archives in
# ../shared/vendor/ (each checked against its sha256 in scripts/vendor.sh); their dependencies,
# the CLI and the kubernetes provider come from the Go module proxy. Tools go into
# $PULUMI_TOOLS_DIR/bin (default ~/.cache/alphapulse-pulumi/bin), providers into Pulumi's plugin
# cache at the versions requirements.txt pins. Go's caches make a second run fast; nothing built
# is ever committed. Safe to run again: present, up-to-date tools are kept.
#
# A `pulumi` already on PATH (outside that directory) is a real distribution: it is used as it
# is, with its own language host, and it downloads the provider plugins itself; nothing is built.
# Without one, the vendor archives and Go are needed; the script names whichever is missing.
#
# Prints the directory to put first on PATH as its last line, e.g.
#   export PATH="$(scripts/install-pulumi.sh | tail -n 1):$PATH"
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/bin"
PYTHON="${PYTHON:-python3}"
CLI_MODULE="$PROJECT_ROOT/tools/pulumi-cli"

say() { printf '[install-pulumi] %s\n' "$*" >&2; }
die() { printf '[install-pulumi] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$BIN"
export PATH="$BIN:$PATH:/usr/local/go/bin"

cli_version() { awk '$1 == "github.com/pulumi/pulumi/pkg/v3" {print $2}' "$CLI_MODULE/go.mod"; }

# Built from exactly these module files: nothing to rebuild. A digest of their content, kept in
# a stamp beside the binary, not their mtimes (a fresh clone's files are all new, so an mtime
# test rebuilt the CLI on every CI run).
source_digest() {
  (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}
is_fresh() {
  local binary="$1" source_dir="$2"
  [ -x "$binary" ] || return 1
  [ "$(cat "$binary.stamp" 2>/dev/null)" = "$(source_digest "$source_dir")" ]
}

ambient_pulumi() { PATH="${PATH#"$BIN:"}" command -v pulumi || true; }

# Without a Pulumi distribution everything is built: say at once what that needs and is absent.
check_build_inputs() {
  local missing=()
  command -v go >/dev/null 2>&1 || missing+=("Go >= 1.25.11 (apt-get install golang, or /usr/local/go)")
  # shellcheck source=vendor.sh
  . "$PROJECT_ROOT/scripts/vendor.sh"
  local archive
  for archive in "${!VENDOR_SHA256[@]}"; do
    vendor_has "$archive" || missing+=("the source archive $VENDOR_DIR/$archive")
  done
  [ "${#missing[@]}" -eq 0 ] && return
  say "no pulumi on PATH, and building one needs:"
  local item
  for item in "${missing[@]}"; do say "  missing: $item"; done
  die "install Pulumi (https://www.pulumi.com/docs/install/) or provide what is listed above"
}

install_cli() {
  local ambient
  ambient="$(ambient_pulumi)"
  if [ -n "$ambient" ]; then
    say "using the pulumi on PATH: $ambient ($("$ambient" version))"
    return
  fi
  check_build_inputs
  if is_fresh "$BIN/pulumi" "$CLI_MODULE"; then
    say "pulumi $("$BIN/pulumi" version) already built"
    return
  fi
  local version start=$SECONDS
  version="$(cli_version)"
  say "building the pulumi CLI $version from Go modules (a cold build takes a few minutes)"
  (cd "$CLI_MODULE" && go build -trimpath -o "$BIN/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$BIN/pulumi.tmp" "$BIN/pulumi"
  source_digest "$CLI_MODULE" >"$BIN/pulumi.stamp"
  say "built pulumi $("$BIN/pulumi" version) in $((SECONDS - start)) s"
}

install_python_host() {
  env PULUMI_TOOLS_DIR="$TOOLS_DIR" bash "$PROJECT_ROOT/scripts/build-python-language-host.sh"
}

# The version requirements.txt pins for a pulumi-<name> SDK package ("" when not pinned).
sdk_version() {
  sed -n "s/^pulumi-$1==\([0-9.]*\).*/\1/p" "$PROJECT_ROOT/requirements.txt"
}

# Build provider <name> at the pinned SDK version with scripts/build-<name>-provider.sh (which
# reads PULUMI_<NAME>_VERSION), then install it into Pulumi's plugin cache unless the very same
# binary is there already.
install_provider() {
  local name="$1" version binary installed
  version="$(sdk_version "$name")"
  if [ -z "$version" ]; then
    say "requirements.txt pins no pulumi-$name: no $name provider needed"
    return
  fi
  env PULUMI_TOOLS_DIR="$TOOLS_DIR" PYTHON="$PYTHON" \
    "PULUMI_$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')_VERSION=$version" \
    bash "$PROJECT_ROOT/scripts/build-$name-provider.sh" >&2
  binary="$TOOLS_DIR/providers/pulumi-resource-$name"
  installed="${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-$name-v$version/pulumi-resource-$name"
  if cmp -s "$binary" "$installed"; then
    say "$name provider $version already in the plugin cache"
    return
  fi
  "$BIN/pulumi" plugin install resource "$name" "$version" --file "$binary" --reinstall >&2
  say "$name provider $version installed into the plugin cache"
}

start=$SECONDS
install_cli
if [ -n "$(ambient_pulumi)" ]; then
  say "ready in $((SECONDS - start)) s"
  dirname "$(ambient_pulumi)"
  exit 0
fi
install_python_host
install_provider docker
install_provider random
install_provider kubernetes
say "ready in $((SECONDS - start)) s; tools in $BIN"
echo "$BIN"
