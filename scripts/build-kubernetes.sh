#!/usr/bin/env bash
# Build Kubernetes' own components from Go modules, for the tiers that run a real cluster here
# (tests/e2e/test_k8s_apiserver.py, scripts/local-kubernetes.sh): kube-apiserver,
# kube-controller-manager, kube-scheduler, kubelet, kube-proxy and kubectl, in one `go build`
# so that they share compiled dependencies. Not called by install-pulumi.sh: nothing in
# `pulumi up` needs them.
#
# k8s.io/kubernetes is served by the module proxy, but its go.mod replaces every k8s.io/* staging
# module with ./staging/src/..., which is not in the module zip, and a dependency's replace
# directives are ignored anyway. So this script writes a wrapper module that requires
# k8s.io/kubernetes and replaces each of those staging modules with its published v0.<minor>.<patch>
# version (the same code, published from the same tag), then builds each cmd/<component>.
#
# Into ${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}/bin/; nothing is written into the
# repository. Idempotent (FORCE=1 rebuilds). KUBERNETES_VERSION picks the release (default
# v1.35.0).
set -euo pipefail

TOOLS_DIR="${PULUMI_TOOLS_DIR:-$HOME/.cache/alphapulse-pulumi}"
VERSION="${KUBERNETES_VERSION:-v1.35.0}"
BIN_DIR="$TOOLS_DIR/bin"
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
# One stamp for the set: the version and the list of components built.
STAMP="$BIN_DIR/.kubernetes.version"
BUILD_DIR="$TOOLS_DIR/build/kubernetes-$VERSION"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

say() { printf '[build-kubernetes] %s\n' "$*"; }
die() { printf '[build-kubernetes] ERROR: %s\n' "$*" >&2; exit 1; }

wanted="$VERSION ${COMPONENTS[*]}"
all_present() {
  local component
  for component in "${COMPONENTS[@]}"; do [ -x "$BIN_DIR/$component" ] || return 1; done
}
if [ "${FORCE:-0}" != 1 ] && all_present && [ "$(cat "$STAMP" 2>/dev/null)" = "$wanted" ]; then
  say "up to date: ${COMPONENTS[*]} ($VERSION) in $BIN_DIR; FORCE=1 rebuilds"
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
mkdir -p "$BUILD_DIR" "$BIN_DIR"
{
  printf 'module alphapulse/kubernetes\n\ngo %s\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' \
    "$go_directive" "$VERSION"
  # k8s.io/api => ./staging/src/k8s.io/api   becomes   k8s.io/api => k8s.io/api v0.35.0
  sed -n 's#^[[:space:]]*\(k8s\.io/[^ ]*\) => \./staging/src/.*$#\t\1 => \1 '"$staging_version"'#p' "$gomod"
  printf ')\n'
} >"$BUILD_DIR/go.mod"
{
  printf '//go:build tools\n\npackage tools\n\nimport (\n'
  for component in "${COMPONENTS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$component"; done
  printf ')\n'
} >"$BUILD_DIR/tools.go"
say "wrapper module: $(grep -c ' => ' "$BUILD_DIR/go.mod") staging replaces at $staging_version"

(
  cd "$BUILD_DIR"
  GOFLAGS=-mod=mod "$GO" mod tidy
  # The release's version, as Kubernetes' own build stamps it (`kubelet --version`, /version,
  # the node's kubeletVersion); without it the binaries say v0.0.0-master.
  minor="${VERSION#v1.}"; minor="${minor%%.*}"
  mkdir -p out
  packages=()
  for component in "${COMPONENTS[@]}"; do packages+=("k8s.io/kubernetes/cmd/$component"); done
  "$GO" build -trimpath -o out/ -ldflags "-s -w \
    -X k8s.io/component-base/version.gitVersion=$VERSION \
    -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    "${packages[@]}"
)
for component in "${COMPONENTS[@]}"; do
  mv -f "$BUILD_DIR/out/$component" "$BIN_DIR/$component"
done
printf '%s\n' "$wanted" >"$STAMP"
say "built ${COMPONENTS[*]} ($VERSION) in $(( $(date +%s) - start ))s; $("$BIN_DIR/kubelet" --version 2>&1 | head -1)"

