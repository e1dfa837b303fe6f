"""Whether the cluster serves every slot, sampled all through the soak from the nodes' side.

The clients' windows (checker.unavailable_windows) include how long a client takes to notice:
its socket timeout and a slot-map refresh that may ask a node that has not seen the failover
yet. This monitor asks the nodes instead, five times a second: every slot's owner in the map
most reachable nodes hold must answer and say cluster_state:ok. The checker judges each fault's
goal on these windows and reports the clients' beside them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from clusterops.node.access import Access
from clusterops.node.observe import observe_nodes
from clusterops.node.targets import Targets
from clusterops.state import checks

SAMPLE_INTERVAL_S = 0.1
PROBE_TIMEOUT_S = 0.3


def serving_every_slot(targets: Targets, access: Access) -> bool:
    snapshots = observe_nodes(targets.nodes, access, PROBE_TIMEOUT_S)
    runs = checks.majority_view(snapshots).majority
    serving = {s.my_id for s in snapshots
               if s.reachable and s.state == "ok" and s.myself and s.myself.is_master}
    return bool(runs) and all(owner in serving for _first, _last, owner in runs)


class ServingMonitor(threading.Thread):
    """Samples (monotonic time, serving every slot) until stopped."""

    def __init__(self, current: Callable[[], tuple[Targets, Access]]) -> None:
        super().__init__(name="serving-monitor", daemon=True)
        self.current = current
        self.samples: list[tuple[float, bool]] = []
        self.failure: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                targets, access = self.current()
                began = time.monotonic()
                serving = serving_every_slot(targets, access)
                # What the nodes said is of the probe's middle (a dead node takes its timeout).
                self.samples.append(((began + time.monotonic()) / 2, serving))
                self._halt.wait(SAMPLE_INTERVAL_S)
        except BaseException as exc:  # surfaced by stop()
            self.failure = exc

    def stop(self) -> list[tuple[float, bool]]:
        self._halt.set()
        self.join(30)
        if self.failure is not None:
            raise RuntimeError(f"the serving monitor died: {self.failure!r}") from self.failure
        return self.samples
