#!/usr/bin/env bash
# Deploy the dev stack.
#
#   scripts/deploy-dev.sh                 pulumi up on stack "dev" (needs the pulumi CLI and a
#                                         Docker engine; uses your current Pulumi backend)
#   scripts/deploy-dev.sh --local-harness no pulumi CLI here: deploy the same program through the
#                                         test harness (stands in for the engine, see README)
#   scripts/deploy-dev.sh --local-harness --down   remove what the harness deployed (keeps volumes)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--local-harness" ]; then
  bash scripts/setup-test-env.sh
  if [ "${2:-}" = "--down" ]; then
    exec python3 -m tests.support.deploy_harness down
  fi
  exec python3 -m tests.support.deploy_harness up
fi

if ! command -v pulumi >/dev/null 2>&1; then
  echo "deploy-dev: the pulumi CLI is not on PATH." >&2
  echo "  Install it (https://www.pulumi.com/docs/install/), or run" >&2
  echo "  scripts/deploy-dev.sh --local-harness   to deploy through the test harness." >&2
  exit 2
fi
if ! docker info >/dev/null 2>&1; then
  echo "deploy-dev: no Docker engine answers (docker info failed); start dockerd first." >&2
  exit 2
fi
python3 -m venv venv
venv/bin/pip install --quiet -r requirements.txt
pulumi stack select dev 2>/dev/null || pulumi stack init dev
pulumi up --stack dev --yes
pulumi stack output --stack dev --json --show-secrets > .dev-outputs.json
chmod 600 .dev-outputs.json
echo "outputs (with the password) in .dev-outputs.json;" \
     "check the cluster: venv/bin/python -m clusterops health --stack-outputs .dev-outputs.json"
