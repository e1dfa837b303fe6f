"""Entry point the engine runs (through the language host's RunPlugin): serve the pack."""

# The engine runs this file with the pack's directory on sys.path, so the sibling module is a
# top-level import here (tests import it as policy.prod_guard).
from prod_guard import PACK_NAME, POLICIES
from pulumi_policy import EnforcementLevel, PolicyPack

PolicyPack(name=PACK_NAME, enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
