"""GeneratedPassword: the generated password of stacks deployed before pulumi-random's.

The program no longer declares it: passwords the config does not give are pulumi-random
RandomPasswords now (components/passwords.py). It stays importable because the engine loads a
dynamic resource's provider from this module to delete it: the first `up` of an upgraded stack
drops the old resource (after scripts/keep_generated_passwords.py moved its value into the
stack config, so the password does not change). Do not change its behaviour.

It was: a value made once by the OS's CSPRNG in the dynamic provider's `create`, stable on every
later run, a secret everywhere; changing `length` made a new one (a replacement).
"""

from __future__ import annotations

import secrets
import string
from typing import Any

import pulumi
from pulumi import dynamic
from pulumi.runtime import rpc

# Letters and digits only: the password is written into redis.conf-style files and URLs.
ALPHABET = string.ascii_letters + string.digits
MIN_LENGTH = 16


def generate(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


class GeneratedPasswordProvider(dynamic.ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        length = news.get("length")
        failures = []
        # Numbers cross the wire as protobuf doubles: 32 arrives as 32.0.
        if isinstance(length, float) and length.is_integer():
            length = int(length)
        if not isinstance(length, int) or length < MIN_LENGTH:
            failures.append(dynamic.CheckFailure(
                "length", f"length must be a whole number >= {MIN_LENGTH}, got {length!r}"))
        return dynamic.CheckResult({"length": length}, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = olds.get("length") != news.get("length")
        return dynamic.DiffResult(
            changes=changed, replaces=["length"] if changed else [], delete_before_replace=False
        )

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        length = int(props["length"])
        return dynamic.CreateResult(
            f"generated-password-{secrets.token_hex(4)}",
            {"length": length, "result": rpc.wrap_rpc_secret(generate(length))},
        )

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        return dynamic.ReadResult(id_, props)


class GeneratedPassword(dynamic.Resource, module="alphapulse", name="GeneratedPassword"):
    """A generated password; `result` is a secret in every output and in the state."""

    result: pulumi.Output[str]

    def __init__(
        self, resource_name: str, length: int = 32, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        opts = pulumi.ResourceOptions.merge(
            opts, pulumi.ResourceOptions(additional_secret_outputs=["result"])
        )
        super().__init__(
            GeneratedPasswordProvider(), resource_name, {"length": length, "result": None}, opts
        )
