"""Run a Pulumi Python program connected to the engine (started by language_host.py).

The host starts this file with the project's own interpreter (its virtualenv), so the program
imports the SDK and providers the project installed. Settings and the stack's config arrive as
one JSON document on stdin rather than in the environment: the config holds decrypted secrets,
and a child's environment is readable from /proc by anything running as the same user.

Exit codes: 0 the program finished; 32 the program failed and the error was already reported
to the engine (the host then tells the engine to bail without printing it again).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import runpy
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pulumi
from pulumi.runtime import reset_options, run_in_stack, set_all_config

ERROR_REPORTED = 32


def run(request: dict[str, Any]) -> int:
    reset_options(
        project=request["project"],
        stack=request["stack"],
        root_directory=request["root_directory"],
        parallel=request["parallel"],
        engine_address=request["engine_address"],
        monitor_address=request["monitor_address"],
        preview=request["dry_run"],
        organization=request["organization"] or "organization",
    )
    set_all_config(request["config"], request["config_secret_keys"] or None)

    # A failed program leaves tasks nobody awaits; their "never retrieved" noise would bury the
    # one error the user must read.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    loop = asyncio.new_event_loop()
    loop.set_default_executor(ThreadPoolExecutor(max_workers=max(request["parallel"], 1) * 4))
    program = request["program_directory"]
    try:
        loop.run_until_complete(
            run_in_stack(lambda: runpy.run_path(program, run_name="__main__"))
        )
    except pulumi.RunError as exc:
        # A RunError is an expected failure with a message written for the user: no traceback.
        pulumi.log.error(str(exc))
        return ERROR_REPORTED
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            return 0  # the engine is shutting down (e.g. Ctrl-C); it reports that itself
        pulumi.log.error(f"RPC error: {exc.details()}")
        return ERROR_REPORTED
    except Exception:  # noqa: BLE001 - anything else is a program bug: show where it happened
        pulumi.log.error("Program failed with an unhandled exception:\n" + traceback.format_exc())
        return ERROR_REPORTED
    finally:
        for task in asyncio.all_tasks(loop):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                loop.run_until_complete(task)
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()
    return 0


def main() -> int:
    try:
        return run(json.load(sys.stdin))
    except KeyboardInterrupt:
        # The engine is cancelling (Ctrl-C, or it stops after another resource failed) and
        # reports why itself; a traceback of where this process was interrupted helps nobody.
        return ERROR_REPORTED


if __name__ == "__main__":
    sys.exit(main())
