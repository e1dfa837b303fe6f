"""Entry point for ``python -m clusterops``."""

from clusterops.cli.main import main

raise SystemExit(main())
