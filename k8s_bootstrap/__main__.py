"""``python -m k8s_bootstrap``: the bootstrap image's entrypoint (k8s_bootstrap/Dockerfile).

``python -m k8s_bootstrap reconcile`` answers the Kubernetes target's dynamic provider
(k8s_bootstrap/reconcile.py); any other arguments are the formation Job's (k8s_bootstrap/job.py).
"""

import sys

if sys.argv[1:2] == ["reconcile"]:
    from k8s_bootstrap.reconcile import main as reconcile_main

    sys.exit(reconcile_main())

from k8s_bootstrap.job import main

sys.exit(main())
