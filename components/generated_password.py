"""GeneratedPassword: a password made once by the deploy and kept, encrypted, in the stack state.

It stands where pulumi-random's RandomPassword stood: the same job (a value generated on the
first `up`, stable on every later run, a secret everywhere), without a second resource plugin to
build and ship for it. The value is made by the OS's CSPRNG inside the dynamic provider's
`create`, so a preview shows it as unknown, exactly as RandomPassword's result is.

Changing `length` makes a new password (a replacement); the bootstrap then rotates the live
cluster to it without restarting a node.
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
