"""Chaos soak: random faults under checked workloads (issue 29; docs/chaos.md).

history  - what each client operation did and when (the checker's only input besides reads);
workloads - the set and register clients;
nemesis  - the faults, chosen at random from a printed seed;
healing  - "healed by itself": the condition the runner waits for between faults;
checker  - the verdict, a pure function of the history, the final reads and the faults;
runner   - ties them together for bench/chaos_soak.py and tests/e2e/test_chaos_soak.py.
"""
