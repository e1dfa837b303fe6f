"""The rolling replacement of a Kubernetes stack's pods (components/k8s_rolling.py) against a
fake kubectl that plays the StatefulSet controller: which pods go, in which order, the handover
before each, the wait for the new pod, and the stop (with what to do) when one never comes back.
On real pods: tests/e2e/test_k8s_day2.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from components import k8s_rolling
from components.k8s_rolling import RollError, roll

NODE_OF = {"s1-0": "master-1", "s1-1": "replica-1", "s2-0": "master-2", "s2-1": "replica-2"}


class FakeController:
    """Pods of two StatefulSets; a deleted pod comes back on the update revision (or never)."""

    def __init__(self, outdated: set[str], comes_back: bool = True) -> None:
        self.pods = {name: {"uid": f"{name}-old", "revision": "old" if name in outdated else
                            "new", "ready": True} for name in NODE_OF}
        self.comes_back = comes_back
        self.events: list[str] = []

    def run(self, *args: str, stdin: str | None = None) -> str:
        if args[:2] == ("get", "statefulset"):
            return json.dumps({"status": {"updateRevision": "new"},
                               "spec": {"selector": {"matchLabels": {"sts": args[2]}}}})
        if args[:2] == ("get", "pods") and args[2] == "-l":
            sts = args[3].split("=")[1]
            return json.dumps({"items": [self._item(n) for n in self.pods
                                         if n.startswith(sts + "-")]})
        if args[:2] == ("get", "pods"):
            name = args[3].split("=")[1]
            return json.dumps({"items": [self._item(name)] if name in self.pods else []})
        if args[:2] == ("delete", "pod"):
            self.events.append(f"delete {args[2]}")
            if self.comes_back:
                self.pods[args[2]] = {"uid": f"{args[2]}-new", "revision": "new", "ready": True}
            else:
                del self.pods[args[2]]
        return ""

    def _item(self, name: str) -> dict[str, Any]:
        pod = self.pods[name]
        return {"metadata": {"name": name, "uid": pod["uid"],
                             "labels": {"controller-revision-hash": pod["revision"]}},
                "status": {"conditions": [{"type": "Ready",
                                           "status": "True" if pod["ready"] else "False"}]}}


def handover_recorder(events: list[str]) -> Any:
    def hand_over(node: str) -> dict[str, Any]:
        events.append(f"handover {node}")
        return {"was_master": node.startswith("master"), "new_master": "x", "seconds": 1}
    return hand_over


def test_outdated_pods_go_shard_by_shard_replica_first_each_after_its_handover() -> None:
    fake = FakeController(outdated=set(NODE_OF))
    # After failovers the live master of shard 1 is the pod -1: it goes last in its shard.
    roles = {"master-1": "replica", "replica-1": "master", "master-2": "master",
             "replica-2": "replica"}
    replaced = roll(fake, ["s1", "s2"], NODE_OF, roles, handover_recorder(fake.events), 5,
                    log=lambda _line: None)  # type: ignore[arg-type]
    assert replaced == ["s1-0", "s1-1", "s2-1", "s2-0"]
    assert fake.events == ["handover master-1", "delete s1-0", "handover replica-1",
                           "delete s1-1", "handover replica-2", "delete s2-1",
                           "handover master-2", "delete s2-0"]


def test_pods_on_the_update_revision_and_pods_being_scaled_away_are_left_alone() -> None:
    fake = FakeController(outdated={"s2-1"})
    fake.pods["s2-2"] = {"uid": "u", "revision": "old", "ready": True}  # not in the plan
    replaced = roll(fake, ["s1", "s2"], NODE_OF, {}, handover_recorder(fake.events), 5,
                    log=lambda _line: None)  # type: ignore[arg-type]
    assert replaced == ["s2-1"]


def test_a_pod_that_does_not_come_back_stops_the_roll_with_what_to_do(monkeypatch) -> None:
    monkeypatch.setattr(k8s_rolling, "POLL_S", 0.01)
    fake = FakeController(outdated={"s1-1", "s2-1"}, comes_back=False)
    with pytest.raises(RollError, match="s1-1 .*run `pulumi up` again"):
        roll(fake, ["s1", "s2"], NODE_OF, {}, handover_recorder(fake.events), 0.2,
             log=lambda _line: None)  # type: ignore[arg-type]
    assert fake.events == ["handover replica-1", "delete s1-1"]  # shard 2 untouched


class StuckScale:
    """A StatefulSet whose new pod never becomes Ready."""

    def run(self, *args: str, stdin: str | None = None) -> str:
        if args[:2] == ("get", "statefulset"):
            return json.dumps({"metadata": {"generation": 3}, "status": {
                "observedGeneration": 3, "replicas": 3, "readyReplicas": 2}})
        return ""


def test_scaling_waits_for_every_pod_ready_and_says_so_when_one_never_is(monkeypatch) -> None:
    monkeypatch.setattr(k8s_rolling, "POLL_S", 0.01)
    with pytest.raises(RollError, match="did not reach 3 Ready pods"):
        k8s_rolling.scale(StuckScale(), {"s1": 3}, 0.1)  # type: ignore[arg-type]
