"""The soak report for people: the counts, then one row per fault kind."""

from __future__ import annotations

from typing import Any


def print_report(report: dict[str, Any]) -> None:
    verdict = report["verdict"]
    counts = verdict["counts"]
    print(f"\n== chaos soak: {report['topology']}, seed {report['seed']}, "
          f"{report['seconds']:.0f} s, {sum(report['faults_injected'].values())} faults")
    print(f"set workload: {counts['set_writes']} writes, {counts['set_acked']} acknowledged "
          f"(WAIT 1), {counts['set_unacked']} unacknowledged, {counts['set_failed']} failed; "
          f"availability {verdict['availability']['set']:.2%}")
    print(f"register workload: {counts['register_writes']} writes "
          f"({counts['register_acked']} acknowledged), {counts['register_reads']} reads; "
          f"availability {verdict['availability']['register']:.2%}")
    print(f"acknowledged writes lost: {counts['acked_lost']} (goal 0); unacknowledged lost: "
          f"{counts['unacked_lost']}; failed writes that appeared: "
          f"{counts['failed_appeared'] + counts['register_failed_appeared']}; stale reads: "
          f"{counts['stale_reads']}; reads of values never written: {counts['phantom_reads']}; "
          f"keys evicted: {report['evicted_keys']}")
    print("\n| fault | count | longest hold s | heal s median / max | longest window, "
          "cluster s | longest window, clients s | goal s | met |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, row in verdict["faults"].items():
        heal = "-" if row["heal_s_median"] is None else \
            f"{row['heal_s_median']} / {row['heal_s_max']}"
        print(f"| {kind} | {row['count']} | {row['hold_s_max']} | {heal} | "
              f"{row['longest_window_s']} | {row['client_window_s']} | {row['goal_s']} | "
              f"{'yes' if row['within_goal'] else 'NO'} |")
    print("longest unavailable windows: " + "; ".join(verdict["examples"]["longest_windows"]))
    healed = "healed (cluster_state ok everywhere, every slot served, none open)"
    print(f"\nend state: {report['final_problems'] or healed}")
    for problem in report["problems"]:
        print(f"PROBLEM: {problem}")
