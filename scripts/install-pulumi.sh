#!/usr/bin/env bash
# Install what `pulumi preview/up/destroy` of this project needs, building from Go modules what
# cannot be downloaded prebuilt here:
#   pulumi                          the CLI and engine (tools/pulumi-cli pins its version)
#   pulumi-language-python          Python language host (tools/pulumi_python_host, see its README)
#   pulumi-resource-pulumi-python   runs the program's dynamic providers
#   pulumi-resource-docker          pulumi-docker's provider (scripts/build-docker-provider.sh),
#                                   installed into Pulumi's plugin cache ($PULUMI_HOME/plugins)
#                                   at the version requirements.txt pins
#   pulumi-resource-kubernetes      pulumi-kubernetes' provider (scripts/build-kubernetes-provider.sh),
#                                   installed the same way, at the pinned pulumi-kubernetes version:
#                                   the language host makes every stack require it once the SDK
#                                   is installed, Docker stacks included
# into $PULUMI_TOOLS_DIR/bin (default ~/.cache/alphapulse-pulumi/bin). Go's own caches make a
# second build fast; nothing built is ever committed. Safe to run again: present tools are kept.
#
# A `pulumi` already on PATH (outside that directory) is a real distribution: it is used as it
# is, with its own language host, and it downloads the provider plugins itself.
#
# Prints the directory to put first on PATH as its last line, e.g.
#   export PATH="$(scripts/install-pulumi.sh | tail -n 1):$PATH"
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
BIN="$TOOLS_DIR/bin"
PYTHON="${PYTHON:-python3}"
CLI_MODULE="$PROJECT_ROOT/tools/pulumi-cli"
HOST_DIR="$PROJECT_ROOT/tools/pulumi_python_host"

say() { printf '[install-pulumi] %s\n' "$*" >&2; }
die() { printf '[install-pulumi] ERROR: %s\n' "$*" >&2; exit 1; }

mkdir -p "$BIN"
export PATH="$BIN:$PATH:/usr/local/go/bin"

cli_version() { awk '$1 == "github.com/pulumi/pulumi/pkg/v3" {print $2}' "$CLI_MODULE/go.mod"; }

# Newer than every file of the module that builds it: nothing to rebuild.
is_fresh() {
  local binary="$1" source_dir="$2"
  [ -x "$binary" ] || return 1
  [ -z "$(find "$source_dir" -newer "$binary" -type f -print -quit)" ]
}

ambient_pulumi() { PATH="${PATH#"$BIN:"}" command -v pulumi || true; }

install_cli() {
  local ambient
  ambient="$(ambient_pulumi)"
  if [ -n "$ambient" ]; then
    say "using the pulumi on PATH: $ambient ($("$ambient" version))"
    return
  fi
  if is_fresh "$BIN/pulumi" "$CLI_MODULE"; then
    say "pulumi $("$BIN/pulumi" version) already built"
    return
  fi
  command -v go >/dev/null 2>&1 || die "Go is needed to build the pulumi CLI (apt-get install golang, or /usr/local/go)"
  local version start=$SECONDS
  version="$(cli_version)"
  say "building the pulumi CLI $version from Go modules (a cold build takes a few minutes)"
  (cd "$CLI_MODULE" && go build -trimpath -o "$BIN/pulumi.tmp" \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
  mv "$BIN/pulumi.tmp" "$BIN/pulumi"
  say "built pulumi $("$BIN/pulumi" version) in $((SECONDS - start)) s"
}

install_python_host() {
  local python host="$TOOLS_DIR/python-host"
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found"
  # The interpreter itself, not a shim (pyenv's depend on the directory they run in).
  python="$("$PYTHON" -c 'import sys; print(sys.executable)')"
  "$python" -c "import grpc, pulumi" 2>/dev/null \
    || die "$python lacks grpcio/pulumi: pip install -r $PROJECT_ROOT/requirements-dev.txt"
  # A copy, not a link into this checkout: the tools outlive any one clone (CI's goes away).
  mkdir -p "$host"
  cp "$HOST_DIR"/*.py "$HOST_DIR/dynamic_provider.sh" "$host/"
  # The host itself runs under this interpreter; each program runs under its own virtualenv.
  printf '#!/bin/sh\nexec "%s" "%s/language_host.py" "$@"\n' "$python" "$host" \
    >"$BIN/pulumi-language-python"
  chmod 0755 "$BIN/pulumi-language-python" "$host/dynamic_provider.sh"
  ln -sf "$host/dynamic_provider.sh" "$BIN/pulumi-resource-pulumi-python"
  say "Python language host: $BIN/pulumi-language-python (from $HOST_DIR)"
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
install_provider kubernetes
say "ready in $((SECONDS - start)) s; tools in $BIN"
echo "$BIN"
