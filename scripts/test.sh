#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine: installs what is missing (apt, pip),
# starts dockerd when it is not running, builds the local test images, then runs pytest.
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not e2e and not slow"` for the
# quick tiers.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-test-env.sh
ruff check .
exec python3 -m pytest "$@"
