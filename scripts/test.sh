#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing (apt, pip), starts
# dockerd when it is not running, builds the local test images, builds Redis 7.2.6 and Valkey 8.0.1
# from the vendored sources (scripts/build-engines.sh) and the Pulumi CLI and plugins from Go
# modules (scripts/install-pulumi.sh; all cached after the first time), then runs ruff and
# pytest. Extra arguments go to pytest.
#
#   scripts/test.sh            every tier, the real `pulumi preview/up/destroy` included
#   scripts/test.sh --quick    the quick tiers only (pure code, Pulumi mocks, real redis-server
#                              processes): no Docker deploys, no engine, nothing built (the
#                              engine matrix's Redis 7.2/Valkey cases skip until they are)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--quick" ]; then
  shift
  bash scripts/setup-test-env.sh --no-docker
  ruff check .
  # Six workers: these tiers mostly wait on redis-server processes, so two cores keep up
  # (four took 2 min 5 s once the engine matrix joined, six 1 min 46 s: docs/tests.md).
  exec python3 -m pytest -m "not e2e and not slow" -n 6 "$@"
fi

bash scripts/setup-test-env.sh
# The engine matrix's servers (Redis 7.2.6, Valkey 8.0.1) from the vendored sources; cached.
bash scripts/build-engines.sh >&2
PATH="$(bash scripts/install-pulumi.sh | tail -n 1):$PATH"
export PATH
# Kubernetes components: the server-side dry-run of the manifests, and the local cluster (not needed to deploy).
bash scripts/build-kubernetes.sh >&2
bash scripts/build-coredns.sh >&2
ruff check .
if [ "$#" -gt 0 ]; then
  exec python3 -m pytest "$@"
fi
# The quick tiers on six workers first (as --quick: they mostly wait on redis-server processes),
# then the slow tiers one test at a time: their deploys, failover timings and Kubernetes
# cluster share the 2 cores and fixed names (docs/tests.md has the times).
python3 -m pytest -m "not e2e and not slow" -n 6 --durations=10
exec python3 -m pytest -m "e2e or slow" --durations=40
