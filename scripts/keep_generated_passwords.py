#!/usr/bin/env python3
"""Carry a stack's generated passwords over to pulumi-random, once, without changing them.

Stacks deployed before the switch to pulumi-random hold their generated passwords in our own
`GeneratedPassword` dynamic resources. The program now makes a `RandomPassword` for each
password the config does not give; left alone, the next `pulumi up` would make new passwords
and rotate the live cluster to them (no restart, but every client holding the old one is
refused). This script reads each `GeneratedPassword`'s value from the stack's state and stores
it as the matching secret config key, so the next `up` keeps it: no RandomPassword is made for
a password the config gives, and the old resource is dropped from the state.

    python3 scripts/keep_generated_passwords.py --stack dev [--cwd PROJECT_DIR]

Each value goes to `pulumi config set --secret` on its standard input: never in an argument,
never in an environment variable, never printed. Safe to run again (a key already set is left
as it is, and said so).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

PROJECT = "alphapulse-redis-cluster"
GENERATED_PASSWORD = "pulumi-python:dynamic/alphapulse:GeneratedPassword"
# The program's resource names (__main__.py) -> the config key that now takes their place.
CONFIG_KEY_OF = {
    "redis-password": "password",
    "redis-admin-password": "adminPassword",
    "redis-exporter-password": "exporterPassword",
    "redis-replication-password": "replicationPassword",
}


def pulumi(args: list[str], cwd: Path, stdin: str | None = None) -> str:
    done = subprocess.run(["pulumi", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        # stderr only: stdout of `stack export --show-secrets` holds every secret.
        raise SystemExit(f"`pulumi {args[0]} {args[1]}` failed ({done.returncode}): "
                         f"{done.stderr.strip()[-500:]}")
    return done.stdout


def generated_passwords(deployment: dict) -> dict[str, str]:
    """config key -> value of every GeneratedPassword in an exported (--show-secrets) state."""
    found = {}
    for resource in deployment.get("deployment", {}).get("resources") or []:
        if resource.get("type") != GENERATED_PASSWORD:
            continue
        name = resource["urn"].rsplit("::", 1)[-1]
        key = CONFIG_KEY_OF.get(name)
        value = (resource.get("outputs") or {}).get("result")
        if isinstance(value, dict):  # a secret, as `--show-secrets` writes it
            value = value.get("plaintext", value.get("value"))
            value = json.loads(value) if isinstance(value, str) and value.startswith('"') else value
        if key and isinstance(value, str) and value:
            found[key] = value
    return found


def configured_keys(stack: str, cwd: Path) -> set[str]:
    listing = json.loads(pulumi(["config", "--stack", stack, "--json"], cwd))
    return {full.split(":", 1)[1] for full in listing if full.startswith(f"{PROJECT}:")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True, help="the stack to carry over (e.g. dev)")
    parser.add_argument("--cwd", type=Path, default=Path.cwd(),
                        help="the project directory (default: the current one)")
    args = parser.parse_args(argv)

    state = json.loads(pulumi(["stack", "export", "--stack", args.stack, "--show-secrets"],
                              args.cwd))
    passwords = generated_passwords(state)
    if not passwords:
        print(f"stack {args.stack}: no GeneratedPassword in its state; nothing to carry over")
        return 0
    already = configured_keys(args.stack, args.cwd)
    for key, value in sorted(passwords.items()):
        if key in already:
            print(f"{PROJECT}:{key}: already set in the stack config; left as it is")
            continue
        pulumi(["config", "set", "--secret", "--stack", args.stack, f"{PROJECT}:{key}"],
               args.cwd, stdin=value + "\n")
        print(f"{PROJECT}:{key}: set (secret) to the password the stack already uses")
    print(f"next: `pulumi preview --stack {args.stack}` deletes the old GeneratedPassword "
          "resources and changes no password")
    return 0


if __name__ == "__main__":
    sys.exit(main())
