"""The config every stack deployed by the team-ecosystem tests uses (policy pack, app stack,
client helper): its own names, subnet and host ports, so it can run beside the dev/prod e2e
stacks (alphapulse, 172.28/172.30, 7001-7006, 9121, 9090) without a collision."""

from __future__ import annotations

from pathlib import Path

from tests.support.deploy_fixtures import local_image_config
from tests.support.pulumi_cli import ensure_venv

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = PROJECT_ROOT / "policy"

TEAM_OVERRIDES = {
    "namePrefix": "apteam",
    "subnet": "172.31.77.0/24",
    "basePort": "7301",
    "exporterPort": "9321",
    "prometheusPort": "9390",
}
TEAM_PASSWORD = "apteam-test-password-0123456789"  # throwaway test clusters only


def team_config(**extra: str) -> dict[str, str]:
    """Local images (no registry here) + the team overrides + `extra`."""
    return {**local_image_config(), **TEAM_OVERRIDES, **extra}


def ensure_policy_venv() -> Path:
    """policy/venv (PulumiPolicy.yaml: runtime.options.virtualenv), filled from
    policy/requirements.txt, as `pulumi install` would make it."""
    return ensure_venv(POLICY_DIR)
