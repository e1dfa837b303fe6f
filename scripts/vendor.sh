# Sourced by the build scripts: the unmodified third-party source archives in shared/vendor/
# (../shared/vendor/SOURCES.md names each one's repository, commit and licence), checked against
# the sha256 pinned here before anything is built from them. Callers define say() and die().
#
# VENDOR_DIR overrides where the archives are (default: ../shared/vendor beside the project).

VENDOR_DIR="${VENDOR_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/../shared/vendor}"

# archive -> sha256, exactly as SOURCES.md lists them. A different archive is refused, never
# built: the pin is what README's toolchain table promises users.
declare -A VENDOR_SHA256=(
  [pulumi-language-python-1b594989.tar.gz]=78f4df8a1e7561caef26de1780235542d4df0df581c978ae6c6183ef6fd3ba57
  [pulumi-docker-237b7899.tar.gz]=1372595d828ab334f9f8b8b53b292ba27a92b542124580e2a2c913e9deea9e04
  [terraform-provider-docker-5074970c.tar.gz]=dbc27d5e427c10c38374c43b858142f565a407754535c2f0cb22b650dab6e465
  [pulumi-random-f64d8726.tar.gz]=2aa072b53a92e578b4afb9a88fccbda5afd9f3bdc2410c6d53cffd46e0d63096
)

vendor_path() { printf '%s/%s' "$VENDOR_DIR" "$1"; }

# Whether every named archive is present (no checksum yet: see vendor_unpack).
vendor_has() {
  local archive
  for archive in "$@"; do
    [ -f "$(vendor_path "$archive")" ] || return 1
  done
}

# Check ARCHIVE's sha256 against the pin, then unpack it into a fresh DEST.
vendor_unpack() {
  local archive="$1" dest="$2" path expected actual
  path="$(vendor_path "$archive")"
  expected="${VENDOR_SHA256[$archive]:-}"
  [ -n "$expected" ] || die "no sha256 pinned for $archive in scripts/vendor.sh"
  [ -f "$path" ] || die "missing source archive $path (see ../shared/vendor/SOURCES.md)"
  actual="$(sha256sum "$path" | cut -d' ' -f1)"
  [ "$actual" = "$expected" ] \
    || die "$path has sha256 $actual, expected $expected: refusing to build from it"
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -xzf "$path" -C "$dest"
}

# One line that changes whenever what a build reads changes: the archives' pinned checksums and
# the build script itself. A binary whose stamp file holds this line is up to date.
vendor_stamp() {
  local script="$1"; shift
  local archive
  {
    for archive in "$@"; do printf '%s %s\n' "$archive" "${VENDOR_SHA256[$archive]}"; done
    sha256sum "$script" "${BASH_SOURCE[0]}" | cut -d' ' -f1
  } | sha256sum | cut -d' ' -f1
}
