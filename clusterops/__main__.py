"""Entry point for ``python -m clusterops``."""

from clusterops.cli import main

raise SystemExit(main())
