#!/usr/bin/env bash
# Deploy the dev stack with `pulumi up`, from a fresh machine.
#
#   scripts/deploy-dev.sh                  install what is missing, then `pulumi up` of stack dev
#   scripts/deploy-dev.sh --local-images   the same, with images built here from Debian's
#                                          binaries (hosts that reach no container registry)
#   scripts/deploy-dev.sh --destroy        `pulumi destroy` of stack dev
#
# What it sets up: Docker and the test packages (scripts/setup-test-env.sh, as root on Debian),
# the pulumi CLI and plugins (scripts/install-pulumi.sh, built from Go modules where no binary
# can be downloaded). The project's virtualenv (venv/, from requirements.txt) is made by Pulumi's
# language host on the first `pulumi up`, as for any Python project. Backend: yours when you are
# logged in (`pulumi login`) or PULUMI_BACKEND_URL is set; otherwise a local file backend in
# .pulumi-state/ with a generated passphrase file (mode 0600) for the stack's secrets.
set -euo pipefail
cd "$(dirname "$0")/.."
PROJECT_ROOT="$(pwd)"

mode=up
local_images=0
for arg in "$@"; do
  case "$arg" in
    --local-images) local_images=1 ;;
    --destroy) mode=destroy ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "deploy-dev: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done

bash scripts/setup-test-env.sh >&2
PATH="$(bash scripts/install-pulumi.sh | tail -n 1):$PATH"
export PATH PULUMI_SKIP_UPDATE_CHECK=1

if [ -z "${PULUMI_BACKEND_URL:-}" ] && ! pulumi whoami >/dev/null 2>&1; then
  mkdir -p .pulumi-state
  chmod 0700 .pulumi-state
  export PULUMI_BACKEND_URL="file://$PROJECT_ROOT/.pulumi-state"
  echo "deploy-dev: not logged in to a Pulumi backend; using $PULUMI_BACKEND_URL" >&2
fi
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
  passphrase_file="$PROJECT_ROOT/.pulumi-state/passphrase"
  if [ ! -s "$passphrase_file" ]; then
    mkdir -p "$(dirname "$passphrase_file")"
    (umask 077 && python3 -c 'import secrets; print(secrets.token_urlsafe(32))' >"$passphrase_file")
  fi
  export PULUMI_CONFIG_PASSPHRASE_FILE="$passphrase_file"
fi

pulumi stack select dev 2>/dev/null || pulumi stack init dev --secrets-provider passphrase

if [ "$mode" = destroy ]; then
  exec pulumi destroy --stack dev --yes
fi

if [ "$local_images" = 1 ]; then
  python3 - <<'EOF' | while read -r key value; do pulumi config set --stack dev "$key" "$value"; done
from tests.support.images import ensure_images
images = ensure_images()
print("alphapulse-redis-cluster:redisImage", images["redis"])
print("alphapulse-redis-cluster:exporterImage", images["exporter"])
print("alphapulse-redis-cluster:prometheusImage", images["prometheus"])
print("alphapulse-redis-cluster:pullImages", "false")
EOF
fi

pulumi up --stack dev --yes
outputs=.dev-outputs.json
(umask 077 && pulumi stack output --stack dev --json --show-secrets >"$outputs")
echo "outputs (with the password, mode 0600) in $outputs;" \
     "check the cluster: venv/bin/python -m clusterops health --stack-outputs $outputs"
