"""Make the project root importable for every test tier, as Pulumi does when it runs the program."""

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

# The deployed-stack fixtures live with the harness they drive.
pytest_plugins = ["tests.support.deploy_fixtures"]
