"""``python -m k8s_bootstrap``: the bootstrap Job image's entrypoint (k8s_bootstrap/Dockerfile)."""

import sys

from k8s_bootstrap.job import main

sys.exit(main())
