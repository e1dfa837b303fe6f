"""CrossGuard rules that a prod-like stack of the AlphaPulse Redis Cluster must pass.

Prod-like = stack `prod`, `prod-*` or `*-prod` (the same test as components/spec.py's
`_is_prod_stack`). Every rule is MANDATORY there: a violation stops `pulumi preview` and
`pulumi up` before anything changes. On other stacks each rule reports itself not applicable.

The stack name is read from each resource's URN (`urn:pulumi:<stack>::...`), which the engine
always sends, rather than from PULUMI_STACK, which it sets only for the legacy
`pulumi-analyzer-policy-python` launcher and not when the language host runs the pack.

Each rule is a pure function `(ResourceValidationArgs) -> list[str]` of problems, wrapped in a
ResourceValidationPolicy; tests call the policies' `validate` with constructed arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import pulumi_policy.deserialize as _deserialize
import pulumi_policy.policy as _policy_module
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_NAME = "alphapulse-prod-guard"

VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
BOOTSTRAP = "pulumi-python:dynamic/alphapulse:ClusterBootstrap"
SECRET_FILES = "pulumi-python:dynamic/alphapulse:SecretFiles"
GENERATED_PASSWORD = "random:index/randomPassword:RandomPassword"

DATA_VOLUME_LABEL = "com.alphapulse.node"  # only node data volumes carry it
# Failover takes about node-timeout + 0.5-1 s (DESIGN.md section 3): above 2000 ms the
# "<5 s failover" promise is gone (measured 4.3-4.8 s at 2000); below 500 ms a fork for
# BGSAVE/AOF rewrite or a busy host is enough to cause a false failover.
NODE_TIMEOUT_MIN_MS = 500
NODE_TIMEOUT_MAX_MS = 2000
# Addresses that publish a port on every interface (Docker's default when `ip` is unset).
ALL_INTERFACES = {"", "0.0.0.0", "::", "[::]"}

# Pulumi's wire format for a secret value (the same constants pulumi_policy.deserialize uses).
_SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def is_prod_stack(stack: str) -> bool:
    """components/spec.py's `_is_prod_stack`, restated because the pack has no project code."""
    return stack == "prod" or stack.startswith("prod-") or stack.endswith("-prod")


def stack_of(urn: str) -> str:
    """`urn:pulumi:<stack>::<project>::<type>::<name>` -> `<stack>`."""
    head = urn.split("::", 1)[0]
    parts = head.split(":", 2)
    if len(parts) != 3 or parts[:2] != ["urn", "pulumi"]:
        raise ValueError(f"not a Pulumi URN: {urn!r}")
    return parts[2]


# -- secrets -----------------------------------------------------------------------------------
class SecretText(str):
    """A string that reached the analyzer inside a Pulumi secret.

    pulumi_policy 1.21.0 unwraps secrets before a validation sees the inputs, so a rule cannot
    tell `password` from `Output.secret(password)`. Every string inside a secret becomes this
    subclass instead: equal to the plain string for every other rule, distinguishable here.
    """


def mark_secrets(raw: Any, inside_secret: bool = False) -> Any:
    """The engine's JSON form of resource inputs, secrets unwrapped, their strings marked."""
    if isinstance(raw, dict):
        if raw.get(_SECRET_SIG_KEY) == _SECRET_SIG:
            return mark_secrets(raw.get("value"), True)
        return {key: mark_secrets(value, inside_secret) for key, value in raw.items()}
    if isinstance(raw, list):
        return [mark_secrets(value, inside_secret) for value in raw]
    if inside_secret and isinstance(raw, str):
        return SecretText(raw)
    return raw


def _deserialize_marking_secrets(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
    if proxy_secrets:  # remediations keep their own secret handling
        return _deserialize.deserialize_properties(props, proxy_secrets)
    return _deserialize.deserialize_properties(mark_secrets(props), proxy_secrets)


# pulumi_policy's Analyze looks this name up in its module at every call. Pinned to 1.21.0
# (policy/requirements.txt); tests/unit/test_policy_pack.py runs the real servicer's Analyze so
# an upgrade that moves it fails there, not silently here.
_policy_module.deserialize_properties = _deserialize_marking_secrets


def is_secret(value: Any) -> bool:
    return isinstance(value, SecretText)


# -- reading inputs ----------------------------------------------------------------------------
_UNKNOWN = object()  # a default that tells "missing or unknown" apart from every real value


def _get(props: Mapping[str, Any], key: str, default: Any = None) -> Any:
    """props[key], or `default` when it is missing or unknown during preview."""
    try:
        value = props[key]
    except (KeyError, UnknownValueError):
        return default
    return default if value is None else value


def _labels(props: Mapping[str, Any]) -> dict[str, str]:
    return {str(_get(item, "label", "")): str(_get(item, "value", ""))
            for item in _get(props, "labels", [])}


def _uploaded_config(props: Mapping[str, Any]) -> str | None:
    """The redis.conf a container is given as an upload, or None.

    This program's node containers have none: their redis.conf is a SecretFiles config file
    (so a setting changes without replacing the container), read by `_written_config`. The
    open-port rule then counts a node's client port as unauthenticated too; client and bus
    ports share bindAddress, so the bus port alone already decides that rule for them."""
    for upload in _get(props, "uploads", []):
        if str(_get(upload, "file", "")).endswith("redis.conf"):
            return str(_get(upload, "content", ""))
    return None


def _written_config(props: Mapping[str, Any]) -> str | None:
    """The redis.conf a SecretFiles resource writes into a node's files volume, or None."""
    config_files = _get(props, "config_files", {})
    value = _get(config_files, "redis.conf", _UNKNOWN)
    return None if value is _UNKNOWN else str(value)


def image_is_pinned(ref: str) -> bool:
    """A digest (`name@sha256:...`), an image ID (`sha256:...`) or a tag other than `latest`."""
    if ref.startswith("sha256:") or "@sha256:" in ref:
        return True
    last = ref.rsplit("/", 1)[-1]  # a registry's `host:port/` is not a tag
    if ":" not in last:
        return False  # no tag means `latest`
    return last.split(":", 1)[1] not in ("", "latest")


# -- the rules ---------------------------------------------------------------------------------
def data_volumes_protected(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type != VOLUME or DATA_VOLUME_LABEL not in _labels(args.props):
        return []
    if args.opts.protect:
        return []
    return [f"data volume {args.name} is not protected: `pulumi destroy` or a replacement "
            "would delete the node's data and its cluster identity (nodes.conf). "
            "Fix: set alphapulse-redis-cluster:protectData to true"]


CLUSTER_PASSWORD_RESOURCE = "redis-password"


def password_secret_not_generated(args: ResourceValidationArgs) -> list[str]:
    # Only the cluster password (the application user's, with acl: true) is handed to people and
    # other stacks. The admin, exporter and replication users' passwords are used by the stack
    # alone and are generated on purpose (stronger than chosen ones); operators read the admin
    # one from the outputs, or set it themselves (adminPassword).
    if args.resource_type == GENERATED_PASSWORD and args.name == CLUSTER_PASSWORD_RESOURCE:
        return [f"{args.name}: the Redis password is generated by the program; a prod stack's "
                "password must be chosen and stored by its operators. Fix: pulumi config set "
                "--secret alphapulse-redis-cluster:password <value> and set passwordPolicy to "
                "required"]
    if args.resource_type == BOOTSTRAP:
        password = _get(args.props, "password")
        if password is not None and not is_secret(password):
            return [f"{args.name}: the Redis password reaches the cluster bootstrap as plain "
                    "text and would be stored unencrypted in the state. Fix: pass it as a "
                    "Pulumi secret (config.get_secret / Output.secret)"]
    if args.resource_type == SECRET_FILES:
        files = _get(args.props, "files", {})
        # A file unknown in preview (a password generated on `up`) is not known to be plain.
        plain = sorted(name for name in files
                       if (value := _get(files, name, _UNKNOWN)) is not _UNKNOWN
                       and not is_secret(value))
        if plain:
            return [f"{args.name}: secret file(s) {', '.join(plain)} are plain text inputs. "
                    "Fix: pass the password to SecretFiles as a Pulumi secret"]
    return []


def replica_per_master(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type != BOOTSTRAP:
        return []
    nodes = list(_get(args.props, "nodes", []))
    masters = [str(_get(n, "name")) for n in nodes if _get(n, "role") == "master"]
    followed = [str(_get(n, "master")) for n in nodes if _get(n, "role") == "replica"]
    alone = [m for m in masters if m not in followed]
    if not alone:
        return []
    return [f"master(s) {', '.join(alone)} have no replica: losing one of them loses its slots "
            "and stops the whole cluster (cluster-require-full-coverage). "
            "Fix: set alphapulse-redis-cluster:replicasPerMaster to 1 or more"]


def node_timeout_bounds(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type == CONTAINER:
        conf = _uploaded_config(args.props)
    elif args.resource_type == SECRET_FILES:
        conf = _written_config(args.props)
    else:
        return []
    if conf is None:
        return []
    found = re.search(r"^cluster-node-timeout\s+(\d+)\s*$", conf, re.M)
    if found is None:
        return [f"{args.name}: redis.conf sets no cluster-node-timeout (Redis' default 15000 ms "
                "means failovers of ~16 s). Fix: set alphapulse-redis-cluster:nodeTimeoutMs "
                f"between {NODE_TIMEOUT_MIN_MS} and {NODE_TIMEOUT_MAX_MS}"]
    timeout = int(found.group(1))
    if NODE_TIMEOUT_MIN_MS <= timeout <= NODE_TIMEOUT_MAX_MS:
        return []
    why = ("false failovers on a fork or a busy host" if timeout < NODE_TIMEOUT_MIN_MS
           else "failover slower than 5 s")
    return [f"{args.name}: cluster-node-timeout {timeout} ms risks {why}. Fix: set "
            f"alphapulse-redis-cluster:nodeTimeoutMs between {NODE_TIMEOUT_MIN_MS} and "
            f"{NODE_TIMEOUT_MAX_MS} (1000 recommended)"]


def _authenticated_port(conf: str | None) -> int | None:
    """The client port of a node whose redis.conf requires a password, else None.

    The password (redis.conf's requirepass) guards only the client port: the cluster bus
    (port + 10000) has no authentication at all, so whoever reaches it can join or confuse
    the cluster."""
    if conf is None or not re.search(r"^(include\s+\S*auth\.conf|requirepass\s+\S+)\s*$",
                                     conf, re.M):
        return None
    port = re.search(r"^port\s+(\d+)\s*$", conf, re.M)
    return int(port.group(1)) if port else 6379


def no_open_publish_without_auth(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type != CONTAINER:
        return []
    # The exporter and Prometheus serve HTTP without any authentication; a node authenticates
    # clients on its client port only.
    authenticated = _authenticated_port(_uploaded_config(args.props))
    open_ports = [
        str(_get(port, "external", "?"))
        for port in _get(args.props, "ports", [])
        if str(_get(port, "ip", "")) in ALL_INTERFACES
        and _get(port, "internal") != authenticated
    ]
    if not open_ports:
        return []
    return [f"{args.name} publishes port(s) {', '.join(open_ports)} on all interfaces without "
            "authentication (HTTP endpoints and the cluster bus have none). Fix: set "
            "alphapulse-redis-cluster:bindAddress to 127.0.0.1 (or one internal address)"]


def images_pinned(args: ResourceValidationArgs) -> list[str]:
    if args.resource_type == REMOTE_IMAGE:
        ref = _get(args.props, "name")
    elif args.resource_type == CONTAINER:
        ref = _get(args.props, "image")  # unknown in preview when pulled: RemoteImage covers it
    else:
        return []
    if ref is None or image_is_pinned(str(ref)):
        return []
    return [f"{args.name} uses image {ref!r}, which is not pinned: the next pull may bring "
            "another version. Fix: set alphapulse-redis-cluster:redisImage/exporterImage/"
            "prometheusImage to a tag like redis:7.0.15-bookworm or a digest (@sha256:...)"]


Rule = Callable[[ResourceValidationArgs], list[str]]


class ProdRule(ResourceValidationPolicy):
    """A rule enforced on prod-like stacks and not applicable elsewhere."""

    def __init__(self, name: str, description: str, rule: Rule) -> None:
        self.rule = rule
        super().__init__(name=name, description=description, validate=self._validate,
                         enforcement_level=EnforcementLevel.MANDATORY)

    def _validate(self, args: ResourceValidationArgs, report: ReportViolation) -> None:
        stack = stack_of(args.urn)
        if not is_prod_stack(stack):
            args.not_applicable(f"stack {stack!r} is not prod-like (prod, prod-*, *-prod)")
        for problem in self.rule(args):
            report(problem, args.urn)


POLICIES: list[ProdRule] = [
    ProdRule("data-volumes-protected",
             "Node data volumes are protected (protectData)", data_volumes_protected),
    ProdRule("password-secret-not-generated",
             "The Redis password is a secret chosen by operators, never generated",
             password_secret_not_generated),
    ProdRule("replica-per-master", "Every master has at least one replica", replica_per_master),
    ProdRule("node-timeout-bounds",
             f"cluster-node-timeout between {NODE_TIMEOUT_MIN_MS} and {NODE_TIMEOUT_MAX_MS} ms",
             node_timeout_bounds),
    ProdRule("no-open-publish-without-auth",
             "No port published on all interfaces unless the service authenticates clients",
             no_open_publish_without_auth),
    ProdRule("images-pinned", "Images are pinned by tag (not latest) or digest", images_pinned),
]
