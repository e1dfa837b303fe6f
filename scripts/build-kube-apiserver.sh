#!/usr/bin/env bash
# Optional: build kube-apiserver from Go modules, for the server-side dry-run tier
# (tests/e2e/test_k8s_apiserver.py; it also needs Debian's etcd-server). Not called by
# install-pulumi.sh: a cold build takes many minutes and nothing in `pulumi up` needs it.
#
# k8s.io/kubernetes is served by the module proxy, but its go.mod replaces every k8s.io/* staging
# module with ./staging/src/..., which is not in the module zip, and a dependency's replace
# directives are ignored anyway. So this script writes a wrapper module that requires
# k8s.io/kubernetes and replaces each of those staging modules with its published v0.<minor>.<patch>
# version (the same code, published from the same tag), then builds cmd/kube-apiserver.
#
# Into ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin/kube-apiserver; nothing is
# written into the repository. Idempotent (FORCE=1 rebuilds). KUBERNETES_VERSION picks the
# release (default v1.35.0).
set -euo pipefail

TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
VERSION="${KUBERNETES_VERSION:-v1.35.0}"
BIN="$TOOLS_DIR/bin/kube-apiserver"
BUILD_DIR="$TOOLS_DIR/build/kube-apiserver-$VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

say() { printf '[build-kube-apiserver] %s\n' "$*"; }
die() { printf '[build-kube-apiserver] ERROR: %s\n' "$*" >&2; exit 1; }

if [ "${FORCE:-0}" != 1 ] && [ -x "$BIN" ] && [ -f "$BIN.version" ] \
    && [ "$(cat "$BIN.version")" = "$VERSION" ]; then
  say "up to date: $BIN ($VERSION); FORCE=1 rebuilds"
  exit 0
fi
command -v "$GO" >/dev/null 2>&1 || die "no Go toolchain"

start=$(date +%s)
staging_version="v0.${VERSION#v1.}"   # v1.35.0 -> v0.35.0
json="$("$GO" mod download -json "k8s.io/kubernetes@$VERSION")" || die "cannot download k8s.io/kubernetes@$VERSION"
gomod="$(printf '%s\n' "$json" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[ -f "$gomod" ] || die "no go.mod for k8s.io/kubernetes@$VERSION in: $json"
go_directive="$(sed -n 's/^go \(.*\)$/\1/p' "$gomod")"

rm -rf "$BUILD_DIR"
mkdir -p "$BUILD_DIR" "$(dirname "$BIN")"
{
  printf 'module alphapulse/kube-apiserver\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
    "$go_directive" "$VERSION"
  # k8s.io/api => ./staging/src/k8s.io/api   becomes   k8s.io/api => k8s.io/api v0.35.0
  sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$gomod"
  printf ')\n'
} >"$BUILD_DIR/go.mod"
printf '//go:build tools\n\npackage tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' \
  >"$BUILD_DIR/tools.go"
say "wrapper module: $(grep -c ' => ' "$BUILD_DIR/go.mod") staging replaces at $staging_version"

(
  cd "$BUILD_DIR"
  GOFLAGS=-mod=mod "$GO" mod tidy
  # The release's version, as Kubernetes' own build stamps it (`kube-apiserver --version`,
  # /version); without it the binary says v0.0.0-master.
  minor="${VERSION#v1.}"; minor="${minor%%.*}"
  "$GO" build -trimpath -o "$BIN.tmp" -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    k8s.io/kubernetes/cmd/kube-apiserver
)
mv -f "$BIN.tmp" "$BIN"
printf '%s\n' "$VERSION" >"$BIN.version"
say "built $BIN ($VERSION) in $(( $(date +%s) - start ))s; $("$BIN" --version 2>&1 | head -1)"

