#!/usr/bin/env bash
# Prepare a machine to run every test tier of this project, then build the local test images.
#
# On Debian as root it installs what is missing, keeps Debian's own redis/prometheus/exporter
# services out of the way, starts dockerd when it is not answering, and builds the images.
# Anywhere else it says exactly what is missing and exits non-zero. Safe to run again: when
# everything is present it only checks, which takes a few seconds.
#
# With --no-docker it stops after the packages (the quick tiers need no engine).
#
# Environment: PYTHON (default python3), DOCKERD_LOG (default /tmp/alphapulse-dockerd.log),
# DOCKERD_WAIT_SECONDS (default 60).
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/alphapulse-dockerd.log}"
DOCKERD_WAIT_SECONDS="${DOCKERD_WAIT_SECONDS:-60}"
APT_LOG=/tmp/alphapulse-apt.log  # only root gets this far

# Debian package -> commands the tests or the image builder run from it.
declare -A PACKAGE_COMMANDS=(
  [docker.io]="docker dockerd"
  [redis-server]="redis-server"
  [redis-tools]="redis-cli"
  [prometheus-redis-exporter]="prometheus-redis-exporter"
  [prometheus]="prometheus promtool"
  [busybox-static]="busybox"
  [iproute2]="ip"
  [iptables]="iptables"
  [procps]="ps pgrep pkill"
  [curl]="curl"
  # The API server's store in the server-side dry-run tier (tests/e2e/test_k8s_apiserver.py).
  [etcd-server]="etcd"
  # The local Kubernetes cluster (local_kubernetes/, scripts/local-kubernetes.sh): each node's
  # containerd and runc, pod networking, kube-proxy's conntrack cleanup, and the static pause
  # binary compiled from Kubernetes' pause.c (tests/support/k8s_images.py).
  [containerd]="containerd ctr"
  [runc]="runc"
  [containernetworking-plugins]=""
  [conntrack]="conntrack"
  [gcc]="gcc"
  [libc6-dev]=""
  # The engine matrix: Redis 7.2.6 and Valkey 8.0.1 built with TLS from the vendored sources
  # (scripts/build-engines.sh, run by scripts/test.sh).
  [make]="make"
  [libssl-dev]=""
  [pkg-config]="pkg-config"
  # No command: python3.11 + redis-py for examples/app-stack's image (tests/support/app_image.py).
  [python3-redis]=""
)
# Services Debian starts when these packages are installed. The tests start their own servers on
# other ports and never use these; the exporter's 9121 would even collide with the stack's
# published exporter port, so they are stopped and disabled here.
DEBIAN_SERVICES=(redis-server prometheus-redis-exporter prometheus etcd)

say() { printf '[setup-test-env] %s\n' "$*"; }
die() { printf '[setup-test-env] ERROR: %s\n' "$*" >&2; exit 1; }

is_debian() { [ -r /etc/debian_version ] && command -v dpkg-query >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }

# busybox-static must be the static build: the images copy /bin/busybox without libraries.
busybox_is_static() {
  [ -x /bin/busybox ] && ! ldd /bin/busybox >/dev/null 2>&1
}

missing_packages() {
  local pkg cmd
  if is_debian; then
    local installed
    installed="$(dpkg-query -W -f='${Package} ${Status}\n' "${!PACKAGE_COMMANDS[@]}" 2>/dev/null \
      | awk '$NF == "installed" {print $1}' || true)"
    for pkg in "${!PACKAGE_COMMANDS[@]}"; do
      grep -qx -- "$pkg" <<<"$installed" || echo "$pkg"
    done
  else
    for pkg in "${!PACKAGE_COMMANDS[@]}"; do
      for cmd in ${PACKAGE_COMMANDS[$pkg]}; do
        if ! command -v "$cmd" >/dev/null 2>&1; then echo "$pkg"; break; fi
      done
    done
    if command -v busybox >/dev/null 2>&1 && ! busybox_is_static; then echo "busybox-static"; fi
  fi
}

report_missing_and_exit() {
  local why="$1"; shift
  say "cannot install what is missing: $why"
  local pkg
  for pkg in "$@"; do
    say "  missing package: $pkg (provides: ${PACKAGE_COMMANDS[$pkg]})"
  done
  say "  install with: apt-get install -y --no-install-recommends $*"
  exit 1
}

install_packages() {
  local -a pkgs=("$@")
  say "installing: ${pkgs[*]}"
  # Keep apt from starting the packages' services: the tests never use them (see DEBIAN_SERVICES).
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && created_policy=1
  fi
  local rc=0
  {
    apt-get update -qq &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
  } >"$APT_LOG" 2>&1 || rc=$?
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
  if [ "$rc" -ne 0 ]; then
    tail -n 20 "$APT_LOG" >&2
    die "apt-get failed (full log: $APT_LOG)"
  fi
}

stop_debian_services() {
  local svc
  for svc in "${DEBIAN_SERVICES[@]}"; do
    if [ -d /run/systemd/system ]; then
      if systemctl is-active --quiet "$svc" 2>/dev/null; then
        say "stopping Debian's $svc service (tests start their own servers on other ports)"
        systemctl disable --now "$svc" >/dev/null 2>&1 || die "could not stop service $svc"
      fi
    elif [ -x "/etc/init.d/$svc" ] && "/etc/init.d/$svc" status >/dev/null 2>&1; then
      say "stopping Debian's $svc service (tests start their own servers on other ports)"
      "/etc/init.d/$svc" stop >/dev/null 2>&1 || die "could not stop service $svc"
      command -v update-rc.d >/dev/null 2>&1 && update-rc.d "$svc" disable >/dev/null 2>&1 || true
    fi
  done
}

install_python_requirements() {
  command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found (set PYTHON=/path/to/python3.11)"
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    die "$PYTHON has no pip; use a virtualenv: $PYTHON -m venv venv && . venv/bin/activate"
  fi
  local log
  log="$(mktemp -t alphapulse-pip.XXXXXX)"
  if ! "$PYTHON" -m pip install -q --disable-pip-version-check --root-user-action=ignore \
      -r "$PROJECT_ROOT/requirements-dev.txt" >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    die "pip install -r requirements-dev.txt failed (log: $log; an externally managed Python" \
      "needs a venv: $PYTHON -m venv venv && . venv/bin/activate)"
  fi
  rm -f "$log"
  say "python requirements satisfied ($("$PYTHON" --version 2>&1))"
}

ensure_dockerd() {
  if docker info >/dev/null 2>&1; then
    say "docker engine answering"
    return
  fi
  is_root || die "docker info fails and only root can start dockerd; start it or add this user" \
    "to the docker group"
  if [ -d /run/systemd/system ] && systemctl start docker >/dev/null 2>&1; then
    say "started docker.service"
  else
    say "starting dockerd in the background (log: $DOCKERD_LOG)"
    # setsid: dockerd must outlive this script and must not get our terminal's signals.
    setsid dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  fi
  local deadline=$((SECONDS + DOCKERD_WAIT_SECONDS))
  until docker info >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$DOCKERD_LOG" >&2 2>/dev/null || true
      die "docker engine did not answer within ${DOCKERD_WAIT_SECONDS}s (log: $DOCKERD_LOG)"
    fi
    sleep 0.5
  done
  say "docker engine answering"
}

main() {
  local -a missing
  mapfile -t missing < <(missing_packages | sort)
  if [ "${#missing[@]}" -gt 0 ]; then
    is_debian || report_missing_and_exit "this is not Debian" "${missing[@]}"
    is_root || report_missing_and_exit "not running as root" "${missing[@]}"
    install_packages "${missing[@]}"
    mapfile -t missing < <(missing_packages | sort)
    [ "${#missing[@]}" -eq 0 ] || die "still missing after install: ${missing[*]}"
  fi
  busybox_is_static || die "/bin/busybox is not the static build (install busybox-static)"
  say "packages present: $(printf '%s\n' "${!PACKAGE_COMMANDS[@]}" | sort | tr '\n' ' ')"

  if is_root; then stop_debian_services; fi
  install_python_requirements
  if [ "${1:-}" = "--no-docker" ]; then
    say "ready (no Docker engine or images: quick tiers only)"
    return
  fi
  ensure_dockerd

  say "building local test images (cached)"
  (cd "$PROJECT_ROOT" && "$PYTHON" -m tests.support.images)
  say "ready"
}

main "$@"
