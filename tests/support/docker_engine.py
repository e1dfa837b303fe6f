"""Create, for real, the Docker resources a Pulumi program declared, as pulumi-docker 5.2 would.

There is no Pulumi CLI (and so no docker provider plugin) here. The deploy harness runs the
program under Pulumi's mocks and hands every declared resource to `DockerEngine.apply` with its
type token, resource name and inputs exactly as the mock receives them: camelCase property names
of the pulumi-docker schema, numbers as floats, secrets as Pulumi's secret wrappers. The engine
creates the resource with the docker CLI and returns the state the mock should return (the
inputs, still secret-wrapped where they were, plus what Docker computed: id, IPs, ports).

Rules it keeps:
- Every property it does not implement raises `UnsupportedProperty` naming the resource and the
  property (nested ones by path, e.g. `uploads[0].source`). Nothing is silently ignored.
- Everything is checked before anything is created, so a rejected resource leaves nothing behind.
- Secrets: a secret is accepted only inside `uploads` (it becomes a file); a secret in any other
  property (command, envs, labels, ...) would be readable in `docker inspect` or the process list,
  so it raises `SecretExposure`. Uploads go into the created-but-not-started container as a tar on
  `docker cp`'s stdin (no file on disk, nothing on argv), with the mode pulumi-docker gives them.
  Env values go through a 0600 env-file in a private temp dir, never argv, never logged. Error
  messages are redacted of every secret value the engine has seen. Inputs the caller already
  unwrapped are plain values: then the engine cannot tell the secrets apart.
- Units and defaults follow pulumi-docker: memory/memorySwap/shmSize in MB (memorySwap -1 =
  unlimited), upload mode 0644 (0744 when executable, `permissions` wins), restart "no",
  start/mustRun true, waitTimeout 60 s, removeVolumes true.

Where the docker CLI cannot express a setting exactly, the engine says so instead of guessing:
healthcheck `tests` in exec form (["CMD", ...]) raises (the CLI only has CMD-SHELL);
`startInterval` raises on engines older than API 1.44 (this machine's Docker 20.10 is 1.41 and
would ignore it). `entrypoints` with several elements runs exactly as declared, but `docker
inspect` shows the first element as Entrypoint and the rest in front of Cmd.

`destroy_all(keep_volumes=False)` removes what this engine created, newest first; it is
idempotent. Every created object carries the label `org.alphapulse.test-engine.session=<id>`.
"""

from __future__ import annotations

import base64
import binascii
import grp
import io
import json
import os
import pwd
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulumi.runtime.rpc import (
    UNKNOWN,
    _special_output_value_sig,
    _special_secret_sig,
    _special_sig_key,
)

NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
CONTAINER = "docker:index/container:Container"
SESSION_LABEL = "org.alphapulse.test-engine.session"

DEFAULT_WAIT_TIMEOUT_S = 60.0  # pulumi-docker's waitTimeout default
DEFAULT_RUNNING_TIMEOUT_MS = 15000  # pulumi-docker's containerReadRefreshTimeoutMilliseconds
POLL_INTERVAL_S = 0.1  # docker inspect costs ~20 ms of CPU; six waits share two cores
RESTART_POLICIES = ("no", "on-failure", "always", "unless-stopped")
START_INTERVAL_MIN_API = (1, 44)


class DockerEngineError(RuntimeError):
    """A declared resource could not be created or removed as declared."""


class UnsupportedProperty(DockerEngineError):
    def __init__(self, resource: str, prop: str, why: str = "not implemented by the test engine"):
        super().__init__(f"{resource}: property '{prop}' is not supported: {why}")
        self.resource = resource
        self.prop = prop


class SecretExposure(DockerEngineError):
    """A secret would land where `docker inspect` or the process list shows it."""


def docker_available(timeout_s: float = 15.0) -> str | None:
    """None when the docker CLI and engine answer; otherwise why not (for pytest.skip)."""
    if shutil.which("docker") is None:
        return "docker CLI not found on PATH (Debian package docker.io; scripts/setup-test-env.sh)"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"`docker info` did not answer within {timeout_s:.0f} s"
    if result.returncode != 0 or not result.stdout.strip():
        first = (result.stderr.strip().splitlines() or ["no output"])[0]
        return f"docker engine not answering ({first}); start it: scripts/setup-test-env.sh"
    return None


# --------------------------------------------------------------------------- supported schema


def _keys(names: str) -> dict[str, None]:
    return dict.fromkeys(names.split())


# What the engine implements, by pulumi-docker property name: None for a value (scalar, list of
# scalars, map of strings), a dict for an object or a list of objects. Checked before anything
# else so an unsupported property is reported as such, whatever else is wrong.
_LABELS = _keys("label value")
_SCHEMAS: dict[str, dict[str, Any]] = {
    CONTAINER: {
        **_keys(
            "name image command entrypoints envs hostname user workingDir stopSignal stopTimeout "
            "logDriver logOpts restart maxRetryCount memory memorySwap shmSize tmpfs sysctls "
            "init readOnly rm privileged publishAllPorts networkMode start mustRun wait "
            "waitTimeout containerReadRefreshTimeoutMilliseconds destroyGraceSeconds "
            "removeVolumes"
        ),
        "labels": _LABELS,
        "ulimits": _keys("name soft hard"),
        "capabilities": _keys("adds drops"),
        "uploads": _keys("file content contentBase64 executable permissions owner group"),
        "volumes": _keys("volumeName containerPath readOnly hostPath fromContainer selinuxRelabel"),
        "mounts": {
            **_keys("target type source readOnly"),
            "bindOptions": _keys("propagation"),
            "volumeOptions": {**_keys("noCopy driverName driverOptions"), "labels": _LABELS},
            "tmpfsOptions": _keys("sizeBytes mode"),
        },
        "networksAdvanced": _keys("name ipv4Address ipv6Address aliases linkLocalIps"),
        "ports": _keys("internal external ip protocol"),
        "healthcheck": _keys("tests interval timeout startPeriod startInterval retries"),
    },
    NETWORK: {
        **_keys("name driver internal attachable ipv6 ipamDriver ipamOptions options"),
        "ipamConfigs": _keys("subnet gateway ipRange auxAddress"),
        "labels": _LABELS,
    },
    VOLUME: {**_keys("name driver driverOpts"), "labels": _LABELS},
}


def _check_supported(resource: str, values: Any, schema: dict[str, Any], path: str = "") -> None:
    items = values if isinstance(values, list) else [values]
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue  # a shape error; the planner reports it with the property's path
        where = f"{path}[{index}]" if isinstance(values, list) else path
        for key, value in item.items():
            prop = f"{where}.{key}" if where else key
            if key not in schema:
                raise UnsupportedProperty(resource, prop)
            if schema[key] is not None and value is not None:
                _check_supported(resource, value, schema[key], prop)


# --------------------------------------------------------------------------- input decoding


@dataclass
class _Decoded:
    """Inputs with Pulumi's wrappers removed, and where the secrets were."""

    values: dict[str, Any]
    secret_props: set[str] = field(default_factory=set)  # top-level property names
    secret_strings: set[str] = field(default_factory=set)


def _decode_inputs(resource: str, inputs: dict[str, Any]) -> _Decoded:
    decoded = _Decoded(values={})

    def walk(value: Any, path: str, secret: bool) -> Any:
        if isinstance(value, dict) and _special_sig_key in value:
            sig = value[_special_sig_key]
            if sig == _special_secret_sig:
                return walk(value.get("value"), path, True)
            if sig == _special_output_value_sig:
                if "value" not in value:
                    raise DockerEngineError(f"{resource}: property '{path}' is not known yet")
                return walk(value["value"], path, secret or bool(value.get("secret")))
            raise UnsupportedProperty(resource, path, "assets, archives and resource references")
        if value == UNKNOWN:
            raise DockerEngineError(
                f"{resource}: property '{path}' is not known yet (computed); run the program "
                "under mocks with preview=False"
            )
        if secret:
            decoded.secret_props.add(path.split("[")[0].split(".")[0])
            # An upload's `file` is a path; it is inside the secret only because Pulumi marks
            # the whole `uploads` list secret when one content is.
            if isinstance(value, str) and not path.endswith(".file"):
                decoded.secret_strings.add(value)
        if isinstance(value, dict):
            return {k: walk(v, f"{path}.{k}", secret) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{path}[{i}]", secret) for i, v in enumerate(value)]
        return value

    decoded.values = {key: walk(value, key, False) for key, value in inputs.items()}
    return decoded


class _Props:
    """Typed, tracked access to one object of inputs; `check_all_used` names what was not read."""

    def __init__(
        self, resource: str, data: dict[str, Any], path: str = "", root: _Props | None = None
    ):
        if not isinstance(data, dict):
            raise DockerEngineError(f"{resource}: property '{path}' must be an object")
        self.resource, self.data, self.path = resource, data, path
        self.used: set[str] = set()
        self.root = root or self
        self.children: list[_Props] = []
        self.root.children.append(self)

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        self.used.add(key)
        return self.data.get(key)

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must be a string")
        return value

    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self.raw(key)
        if value is None:
            return default
        # Pulumi's protobuf Struct carries every number as a float.
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must be an integer")
        return int(value)

    def boolean(self, key: str, default: bool | None = None) -> bool | None:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must be a boolean")
        return value

    def strings(self, key: str) -> list[str]:
        value = self.raw(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must be strings")
        return value

    def mapping(self, key: str) -> dict[str, str]:
        value = self.raw(key) or {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must map to strings")
        return value

    def obj(self, key: str) -> _Props | None:
        value = self.raw(key)
        return None if value is None else _Props(self.resource, value, self._where(key), self.root)

    def objs(self, key: str) -> list[_Props]:
        value = self.raw(key) or []
        if not isinstance(value, list):
            raise DockerEngineError(f"{self.resource}: '{self._where(key)}' must be a list")
        return [
            _Props(self.resource, item, f"{self._where(key)}[{i}]", self.root)
            for i, item in enumerate(value)
        ]

    def labels(self, key: str = "labels") -> list[str]:
        """pulumi-docker labels ([{label, value}]) as `key=value` strings."""
        return [f"{item.string('label')}={item.string('value') or ''}" for item in self.objs(key)]

    def check_all_used(self) -> None:
        for props in self.root.children:
            for key in sorted(props.data):
                if key not in props.used:
                    raise UnsupportedProperty(props.resource, props._where(key))


# --------------------------------------------------------------------------- plans


@dataclass
class _Upload:
    path: str
    content: bytes
    mode: int
    uid: int
    gid: int


@dataclass
class _ContainerPlan:
    name: str
    create_args: list[str]
    env_lines: list[str]
    connects: list[list[str]]  # `docker network connect` args for the 2nd.. network
    uploads: list[_Upload]
    start: bool
    must_run: bool
    wait: bool
    wait_timeout_s: float
    running_timeout_s: float
    destroy_grace_s: int
    remove_volumes: bool


@dataclass
class _Created:
    kind: str  # "container" | "network" | "volume"
    name: str
    resource: str
    destroy_grace_s: int = 0
    remove_volumes: bool = True


def _csv_field(value: str) -> str:
    """One field of docker's CSV-style --mount value."""
    if any(ch in value for ch in ',"\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def _owner_id(value: str, kind: str, what: str) -> int:
    # pulumi-docker resolves names in the database of the host running the provider: this one.
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        raise DockerEngineError(f"{what}: no {kind} '{value}' on this host") from None


def _plan_uploads(props: _Props, what: str) -> list[_Upload]:
    uploads = []
    for item in props.objs("uploads"):
        path = item.string("file")
        if not path or not path.startswith("/"):
            raise DockerEngineError(f"{what}: '{item.path}.file' must be an absolute path")
        content, content_b64 = item.string("content"), item.string("contentBase64")
        if (content is None) == (content_b64 is None):
            raise DockerEngineError(
                f"{what}: '{item.path}' needs exactly one of content, contentBase64"
            )
        if content is not None:
            data = content.encode()
        else:
            try:
                data = base64.b64decode(content_b64 or "", validate=True)
            except binascii.Error:
                raise DockerEngineError(
                    f"{what}: '{item.path}.contentBase64' is not base64"
                ) from None
        mode = 0o744 if item.boolean("executable", False) else 0o644
        permissions = item.string("permissions")
        if permissions is not None:
            try:
                mode = int(permissions, 8)
            except ValueError:
                raise DockerEngineError(
                    f"{what}: '{item.path}.permissions' must be an octal mode like 0600"
                ) from None
        owner, group = item.string("owner"), item.string("group")
        uid = _owner_id(owner, "user", what) if owner else 0
        gid = _owner_id(group, "group", what) if group else 0
        uploads.append(_Upload(path, data, mode, uid, gid))
    return uploads


def _plan_healthcheck(props: _Props, what: str, api: Callable[[], tuple[int, int]]) -> list[str]:
    health = props.obj("healthcheck")
    if health is None:
        return []
    args: list[str] = []
    tests = health.strings("tests")
    if tests:
        kind = tests[0]
        if kind == "NONE":
            args.append("--no-healthcheck")
        elif kind == "CMD-SHELL" and len(tests) == 2:
            args += ["--health-cmd", tests[1]]
        elif kind == "CMD":
            raise UnsupportedProperty(
                what,
                "healthcheck.tests",
                "the exec form ['CMD', ...] cannot be given through the docker CLI; "
                "use ['CMD-SHELL', '<command>']",
            )
        else:
            raise DockerEngineError(
                f"{what}: healthcheck.tests must be ['NONE'], ['CMD-SHELL', cmd] or ['CMD', ...]"
            )
    for key, flag in (
        ("interval", "--health-interval"),
        ("timeout", "--health-timeout"),
        ("startPeriod", "--health-start-period"),
    ):
        value = health.string(key)
        if value is not None:
            args += [flag, value]
    start_interval = health.string("startInterval")
    if start_interval is not None:
        if api() < START_INTERVAL_MIN_API:
            raise UnsupportedProperty(
                what,
                "healthcheck.startInterval",
                f"needs Docker API >= {'.'.join(map(str, START_INTERVAL_MIN_API))}; this engine "
                f"speaks {'.'.join(map(str, api()))} and would ignore it",
            )
        args += ["--health-start-interval", start_interval]
    retries = health.integer("retries")
    if retries is not None:
        args += ["--health-retries", str(retries)]
    return args


def _plan_networks(props: _Props, what: str) -> tuple[list[str], list[list[str]]]:
    networks = props.objs("networksAdvanced")
    mode = props.string("networkMode")
    if mode is not None and networks:
        raise UnsupportedProperty(what, "networkMode", "together with networksAdvanced")
    if mode is not None:
        return ["--network", mode], []
    create: list[str] = []
    connects: list[list[str]] = []
    for index, net in enumerate(networks):
        name = net.string("name")
        if not name:
            raise DockerEngineError(f"{what}: '{net.path}.name' is required")
        endpoint: list[str] = []
        ipv4, ipv6 = net.string("ipv4Address"), net.string("ipv6Address")
        alias_flag = "--network-alias" if index == 0 else "--alias"
        if ipv4:
            endpoint += ["--ip", ipv4]
        if ipv6:
            endpoint += ["--ip6", ipv6]
        for alias in net.strings("aliases"):
            endpoint += [alias_flag, alias]
        for address in net.strings("linkLocalIps"):
            endpoint += ["--link-local-ip", address]
        if index == 0:
            create += ["--network", name, *endpoint]
        else:
            connects.append([*endpoint, name])
    return create, connects


def _plan_mounts(props: _Props, what: str) -> list[str]:
    args: list[str] = []
    for volume in props.objs("volumes"):
        options = []
        if volume.boolean("readOnly", False):
            options.append("ro")
        relabel = volume.string("selinuxRelabel")
        if relabel:
            options.append(relabel)
        suffix = ":" + ",".join(options) if options else ""
        source = volume.string("hostPath") or volume.string("volumeName")
        from_container = volume.string("fromContainer")
        target = volume.string("containerPath")
        if from_container:
            args += ["--volumes-from", from_container + (":ro" if "ro" in options else "")]
        elif not target:
            raise DockerEngineError(f"{what}: '{volume.path}.containerPath' is required")
        else:
            args += ["--volume", f"{source}:{target}{suffix}" if source else f"{target}{suffix}"]
    for mount in props.objs("mounts"):
        fields = [f"type={mount.string('type')}", f"target={mount.string('target')}"]
        if mount.has("source"):
            fields.append(f"source={mount.string('source')}")
        if mount.boolean("readOnly", False):
            fields.append("readonly")
        bind = mount.obj("bindOptions")
        if bind and bind.has("propagation"):
            fields.append(f"bind-propagation={bind.string('propagation')}")
        vol = mount.obj("volumeOptions")
        if vol:
            if vol.boolean("noCopy", False):
                fields.append("volume-nocopy")
            if vol.has("driverName"):
                fields.append(f"volume-driver={vol.string('driverName')}")
            fields += [f"volume-label={label}" for label in vol.labels()]
            fields += [f"volume-opt={k}={v}" for k, v in vol.mapping("driverOptions").items()]
        tmpfs = mount.obj("tmpfsOptions")
        if tmpfs:
            if tmpfs.has("sizeBytes"):
                fields.append(f"tmpfs-size={tmpfs.integer('sizeBytes')}")
            if tmpfs.has("mode"):
                fields.append(f"tmpfs-mode={format(tmpfs.integer('mode') or 0, 'o')}")
        args += ["--mount", ",".join(_csv_field(f) for f in fields)]
    return args


def _plan_ports(props: _Props, what: str) -> list[str]:
    args: list[str] = []
    for port in props.objs("ports"):
        internal = port.integer("internal")
        if internal is None:
            raise DockerEngineError(f"{what}: '{port.path}.internal' is required")
        external = port.integer("external")
        ip = port.string("ip", "0.0.0.0") or "0.0.0.0"
        host_ip = f"[{ip}]" if ":" in ip else ip
        protocol = port.string("protocol", "tcp")
        args += ["--publish", f"{host_ip}:{external or ''}:{internal}/{protocol}"]
    return args


def _plan_container(
    name: str, resource: str, props: _Props, api: Callable[[], tuple[int, int]]
) -> _ContainerPlan:
    what = f"{CONTAINER} '{resource}'"
    image = props.string("image")
    if not image:
        raise DockerEngineError(f"{what}: 'image' is required")
    args = ["--name", name]
    entrypoint = props.raw("entrypoints")
    command = props.strings("command")
    if entrypoint is not None:
        entry = props.strings("entrypoints")
        args += ["--entrypoint", entry[0] if entry else ""]
        command = entry[1:] + command
    env_lines = props.strings("envs")
    for line in env_lines:
        # Without '=', an env-file line copies the variable from the docker CLI's environment.
        if "=" not in line or "\n" in line:
            raise DockerEngineError(f"{what}: every 'envs' entry must be KEY=VALUE on one line")
    for label in props.labels():
        args += ["--label", label]
    for key, flag in (
        ("hostname", "--hostname"),
        ("user", "--user"),
        ("workingDir", "--workdir"),
        ("stopSignal", "--stop-signal"),
        ("logDriver", "--log-driver"),
    ):
        value = props.string(key)
        if value is not None:
            args += [flag, value]
    stop_timeout = props.integer("stopTimeout")
    if stop_timeout is not None:
        args += ["--stop-timeout", str(stop_timeout)]
    for key, value in props.mapping("logOpts").items():
        args += ["--log-opt", f"{key}={value}"]

    restart = props.string("restart", "no") or "no"
    if restart not in RESTART_POLICIES:
        raise DockerEngineError(f"{what}: 'restart' must be one of {', '.join(RESTART_POLICIES)}")
    retries = props.integer("maxRetryCount", 0) or 0
    if retries and restart != "on-failure":
        raise DockerEngineError(f"{what}: 'maxRetryCount' only applies to restart 'on-failure'")
    args += ["--restart", f"{restart}:{retries}" if retries else restart]

    # Sizes in MB as in pulumi-docker; 0 means unset there too.
    for key, flag in (("memory", "--memory"), ("shmSize", "--shm-size")):
        size = props.integer(key, 0) or 0
        if size > 0:
            args += [flag, f"{size}m"]
    swap = props.integer("memorySwap", 0) or 0
    if swap:
        args += ["--memory-swap", "-1" if swap < 0 else f"{swap}m"]

    for ulimit in props.objs("ulimits"):
        limit = f"{ulimit.string('name')}={ulimit.integer('soft')}:{ulimit.integer('hard')}"
        args += ["--ulimit", limit]
    for path, options in props.mapping("tmpfs").items():
        args += ["--tmpfs", f"{path}:{options}" if options else path]
    for key, value in props.mapping("sysctls").items():
        args += ["--sysctl", f"{key}={value}"]
    caps = props.obj("capabilities")
    if caps:
        args += [arg for cap in caps.strings("adds") for arg in ("--cap-add", cap)]
        args += [arg for cap in caps.strings("drops") for arg in ("--cap-drop", cap)]
    for key, flag in (
        ("init", "--init"),
        ("readOnly", "--read-only"),
        ("rm", "--rm"),
        ("privileged", "--privileged"),
        ("publishAllPorts", "--publish-all"),
    ):
        if props.boolean(key, False):
            args.append(flag)

    args += _plan_mounts(props, what)
    args += _plan_ports(props, what)
    args += _plan_healthcheck(props, what, api)
    network_args, connects = _plan_networks(props, what)
    args += network_args
    uploads = _plan_uploads(props, what)

    start = bool(props.boolean("start", True))
    wait = bool(props.boolean("wait", False))
    if wait and not start:
        raise DockerEngineError(f"{what}: 'wait' needs the container started ('start' is false)")
    plan = _ContainerPlan(
        name=name,
        create_args=[*args, image, *command],
        env_lines=env_lines,
        connects=connects,
        uploads=uploads,
        start=start,
        must_run=bool(props.boolean("mustRun", True)),
        wait=wait,
        wait_timeout_s=float(props.integer("waitTimeout", int(DEFAULT_WAIT_TIMEOUT_S)) or 0),
        running_timeout_s=(
            props.integer("containerReadRefreshTimeoutMilliseconds") or DEFAULT_RUNNING_TIMEOUT_MS
        )
        / 1000.0,
        destroy_grace_s=props.integer("destroyGraceSeconds", 0) or 0,
        remove_volumes=bool(props.boolean("removeVolumes", True)),
    )
    props.raw("name")
    props.check_all_used()
    return plan


def _plan_network(name: str, resource: str, props: _Props) -> list[str]:
    args = ["network", "create"]
    driver = props.string("driver")
    if driver:
        args += ["--driver", driver]
    for ipam in props.objs("ipamConfigs"):
        for key, flag in (
            ("subnet", "--subnet"),
            ("gateway", "--gateway"),
            ("ipRange", "--ip-range"),
        ):
            value = ipam.string(key)
            if value:
                args += [flag, value]
        for host, address in ipam.mapping("auxAddress").items():
            args += ["--aux-address", f"{host}={address}"]
    ipam_driver = props.string("ipamDriver")
    if ipam_driver:
        args += ["--ipam-driver", ipam_driver]
    for key, value in props.mapping("ipamOptions").items():
        args += ["--ipam-opt", f"{key}={value}"]
    for key, value in props.mapping("options").items():
        args += ["--opt", f"{key}={value}"]
    for key, flag in (
        ("internal", "--internal"),
        ("attachable", "--attachable"),
        ("ipv6", "--ipv6"),
    ):
        if props.boolean(key, False):
            args.append(flag)
    for label in props.labels():
        args += ["--label", label]
    props.raw("name")
    props.check_all_used()
    return args + [name]


def _plan_volume(name: str, resource: str, props: _Props) -> list[str]:
    args = ["volume", "create"]
    driver = props.string("driver")
    if driver:
        args += ["--driver", driver]
    for key, value in props.mapping("driverOpts").items():
        args += ["--opt", f"{key}={value}"]
    for label in props.labels():
        args += ["--label", label]
    props.raw("name")
    props.check_all_used()
    return args + [name]


# --------------------------------------------------------------------------- the engine


class DockerEngine:
    """Creates declared pulumi-docker resources with the docker CLI and removes them again.

    `log` receives short progress lines (names and timings, never values). `timings` maps each
    container waited for to its seconds from `docker start` to healthy.
    """

    def __init__(
        self,
        log: Callable[[str], None] | None = None,
        session: str | None = None,
        docker: str = "docker",
    ) -> None:
        self.session = session or f"engine-{secrets.token_hex(4)}"
        self.timings: dict[str, float] = {}
        self._log = log or (lambda _line: None)
        self._docker_bin = docker
        self._created: list[_Created] = []
        # Pulumi's SDK registers resources from a thread pool: applies can run concurrently.
        self._lock = threading.Lock()
        self._secret_strings: set[str] = set()
        self._api_version: tuple[int, int] | None = None

    def __enter__(self) -> DockerEngine:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.destroy_all()

    # ---------------------------------------------------------------- public API

    def apply(self, type_token: str, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Create the resource; returns its state for the mock: the inputs plus computed outputs.

        The physical id is `result["id"]`.
        """
        what = f"{type_token} '{name}'"
        decoded = _decode_inputs(what, inputs)
        with self._lock:
            self._secret_strings |= decoded.secret_strings
        leaked = sorted(decoded.secret_props - {"uploads"})
        if leaked:
            raise SecretExposure(
                f"{what}: secret value in {', '.join(repr(p) for p in leaked)}: it would be "
                "readable in `docker inspect` or the process list; pass it as an upload (a file)"
            )
        if type_token not in _SCHEMAS:
            raise DockerEngineError(f"{what}: resource type not supported by the test engine")
        _check_supported(what, decoded.values, _SCHEMAS[type_token])
        props = _Props(what, decoded.values)
        docker_name = props.data.get("name") or _autoname(name)
        if not isinstance(docker_name, str):
            raise DockerEngineError(f"{what}: 'name' must be a string")
        if type_token == NETWORK:
            outputs = self._create_network(docker_name, name, props)
        elif type_token == VOLUME:
            outputs = self._create_volume(docker_name, name, props)
        elif type_token == CONTAINER:
            outputs = self._create_container(docker_name, name, props)
        else:
            raise DockerEngineError(f"{what}: resource type not supported by the test engine")
        return {**inputs, **outputs}

    def destroy_all(self, keep_volumes: bool = False) -> None:
        """Remove every container, network and volume this engine created, newest first."""
        errors = []
        with self._lock:
            recorded = list(self._created)
        for created in reversed(recorded):
            try:
                if not (created.kind == "volume" and keep_volumes):
                    self._remove(created)
                with self._lock:
                    self._created.remove(created)
            except DockerEngineError as error:
                errors.append(str(error))
        if errors:
            raise DockerEngineError("destroy_all left resources behind:\n" + "\n".join(errors))

    def replace_container(self, name: str, inputs: dict[str, Any]) -> dict[str, Any]:
        """Pulumi's delete-before-replace of a container: stop it within its grace period,
        remove it, and create it again from the new inputs (its volumes stay)."""
        docker_name = inputs.get("name")
        with self._lock:
            old = [c for c in self._created if c.kind == "container" and c.name == docker_name]
        if len(old) != 1:
            raise DockerEngineError(f"container {docker_name!r} was not created by this engine")
        self._remove(old[0])
        with self._lock:
            self._created.remove(old[0])
        return self.apply(CONTAINER, name, inputs)

    def created(self) -> list[tuple[str, str]]:
        """(kind, docker name) of everything still recorded, in creation order."""
        with self._lock:
            return [(c.kind, c.name) for c in self._created]

    # ---------------------------------------------------------------- creation

    def _record(self, created: _Created) -> None:
        with self._lock:
            self._created.append(created)

    def _create_network(self, docker_name: str, resource: str, props: _Props) -> dict[str, Any]:
        args = _plan_network(docker_name, resource, props)
        args[2:2] = ["--label", f"{SESSION_LABEL}={self.session}"]
        self._docker(*args)
        self._record(_Created("network", docker_name, resource))
        info = self._inspect("network", docker_name)
        self._log(f"network {docker_name} created")
        ipam = [
            {
                k: v
                for k, v in {
                    "subnet": cfg.get("Subnet"),
                    "gateway": cfg.get("Gateway"),
                    "ipRange": cfg.get("IPRange"),
                    "auxAddress": cfg.get("AuxiliaryAddresses"),
                }.items()
                if v
            }
            for cfg in (info.get("IPAM") or {}).get("Config") or []
        ]
        return {
            "id": info["Id"],
            "name": docker_name,
            "driver": info.get("Driver"),
            "scope": info.get("Scope"),
            "internal": info.get("Internal", False),
            "attachable": info.get("Attachable", False),
            "ipv6": info.get("EnableIPv6", False),
            "ipamConfigs": ipam,
            "ipamDriver": (info.get("IPAM") or {}).get("Driver"),
            "options": info.get("Options") or {},
        }

    def _create_volume(self, docker_name: str, resource: str, props: _Props) -> dict[str, Any]:
        args = _plan_volume(docker_name, resource, props)
        args[2:2] = ["--label", f"{SESSION_LABEL}={self.session}"]
        self._docker(*args)
        self._record(_Created("volume", docker_name, resource))
        info = self._inspect("volume", docker_name)
        self._log(f"volume {docker_name} created")
        # pulumi-docker uses the volume name as its id.
        return {
            "id": docker_name,
            "name": docker_name,
            "driver": info.get("Driver"),
            "mountpoint": info.get("Mountpoint"),
        }

    def _create_container(self, docker_name: str, resource: str, props: _Props) -> dict[str, Any]:
        plan = _plan_container(docker_name, resource, props, self._engine_api_version)
        what = f"container {docker_name}"
        with tempfile.TemporaryDirectory(prefix="docker-engine-") as private_dir:
            args = ["create", "--label", f"{SESSION_LABEL}={self.session}"]
            if plan.env_lines:
                env_file = Path(private_dir) / "env"
                descriptor = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w") as handle:
                    handle.write("".join(line + "\n" for line in plan.env_lines))
                args += ["--env-file", str(env_file)]
            container_id = self._docker(*args, *plan.create_args).stdout.strip()
        self._record(
            _Created("container", docker_name, resource, plan.destroy_grace_s, plan.remove_volumes)
        )
        for connect in plan.connects:
            self._docker("network", "connect", *connect, docker_name)
        if plan.uploads:
            self._docker("cp", "-", f"{docker_name}:/", stdin=_upload_tar(plan.uploads))
        if plan.start:
            self._docker("start", docker_name)
            started = time.monotonic()
            if plan.must_run:
                self._wait_running(docker_name, plan.running_timeout_s, what)
            if plan.wait:
                self._wait_healthy(docker_name, plan.wait_timeout_s, what)
                self.timings[docker_name] = time.monotonic() - started
                self._log(f"{what} healthy after {self.timings[docker_name]:.2f}s")
            else:
                self._log(f"{what} started")
        info = self._inspect("container", docker_name)
        return _container_outputs(container_id, docker_name, info)

    def _wait_running(self, name: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            state = self._inspect("container", name)["State"]
            if state.get("Running"):
                return
            if state.get("Status") in ("exited", "dead") or time.monotonic() >= deadline:
                raise DockerEngineError(
                    f"{what} is not running (status {state.get('Status')}, exit code "
                    f"{state.get('ExitCode')}); last log lines:\n{self._logs_tail(name)}"
                )
            time.sleep(POLL_INTERVAL_S)

    def _wait_healthy(self, name: str, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            info = self._inspect("container", name)
            state = info["State"]
            health = state.get("Health")
            if health is None:
                raise DockerEngineError(f"{what}: wait=true but the container has no healthcheck")
            if health.get("Status") == "healthy":
                return
            stopped = not state.get("Running")
            if stopped or time.monotonic() >= deadline:
                log = "\n".join(
                    f"  exit {entry.get('ExitCode')}: {(entry.get('Output') or '').strip()}"
                    for entry in (health.get("Log") or [])[-5:]
                )
                reason = "stopped" if stopped else f"not healthy within {timeout_s:.0f} s"
                raise DockerEngineError(
                    self._redact(
                        f"{what} {reason} (health: {health.get('Status')}); health log:\n"
                        f"{log or '  (no check finished yet)'}\nlast log lines:\n"
                        f"{self._logs_tail(name)}"
                    )
                )
            time.sleep(POLL_INTERVAL_S)

    # ---------------------------------------------------------------- removal

    def _remove(self, created: _Created) -> None:
        gone_markers = ("No such container", "No such network", "No such volume", "not found")
        if created.kind == "container":
            if created.destroy_grace_s > 0:
                self._docker(
                    "stop",
                    "--time",
                    str(created.destroy_grace_s),
                    created.name,
                    ok_if=gone_markers,
                )
            flags = ["--force"] + (["--volumes"] if created.remove_volumes else [])
            self._docker("rm", *flags, created.name, ok_if=gone_markers)
        elif created.kind == "network":
            self._docker("network", "rm", created.name, ok_if=gone_markers)
        else:
            self._docker("volume", "rm", created.name, ok_if=gone_markers)
        self._log(f"{created.kind} {created.name} removed")

    # ---------------------------------------------------------------- docker CLI

    def _docker(
        self, *args: str, stdin: bytes | None = None, ok_if: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        # argv never carries a secret (apply refuses them outside uploads), so errors may show it.
        result = subprocess.run(
            [self._docker_bin, *args],
            input=stdin,
            capture_output=True,
            check=False,
        )
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        if result.returncode != 0 and not any(marker in stderr for marker in ok_if):
            raise DockerEngineError(
                self._redact(f"`docker {' '.join(args)}` failed: {stderr.strip()}")
            )
        return subprocess.CompletedProcess(result.args, result.returncode, stdout, stderr)

    def _inspect(self, kind: str, name: str) -> dict[str, Any]:
        return json.loads(self._docker(kind, "inspect", name).stdout)[0]

    def _logs_tail(self, name: str, lines: int = 20) -> str:
        result = self._docker("logs", "--tail", str(lines), name, ok_if=("",))
        return self._redact((result.stdout + result.stderr).strip() or "(no output)")

    def _engine_api_version(self) -> tuple[int, int]:
        if self._api_version is None:
            text = self._docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
            major, minor = text.split(".")[:2]
            self._api_version = (int(major), int(minor))
        return self._api_version

    def _redact(self, text: str) -> str:
        with self._lock:
            known = set(self._secret_strings)
        for secret in sorted(_secret_fragments(known), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _secret_fragments(values: set[str]) -> Iterator[str]:
    """Each secret as given and without surrounding whitespace (a password file ends in \\n)."""
    for value in values:
        for fragment in (value, value.strip()):
            if len(fragment) >= 4:
                yield fragment


def _autoname(resource: str) -> str:
    # Pulumi's auto-naming: the resource name plus a random suffix.
    return f"{resource}-{secrets.token_hex(4)[:7]}"


def _upload_tar(uploads: list[_Upload]) -> bytes:
    # Paths relative to "/" like pulumi-docker's CopyToContainer; docker creates missing parents.
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for upload in uploads:
            info = tarfile.TarInfo(upload.path.lstrip("/"))
            info.size, info.mode = len(upload.content), upload.mode
            info.uid, info.gid, info.mtime = upload.uid, upload.gid, int(time.time())
            tar.addfile(info, io.BytesIO(upload.content))
    return buffer.getvalue()


def _container_outputs(container_id: str, name: str, info: dict[str, Any]) -> dict[str, Any]:
    settings = info.get("NetworkSettings") or {}
    network_datas = [
        {
            "networkName": network,
            "ipAddress": data.get("IPAddress"),
            "ipPrefixLength": data.get("IPPrefixLen"),
            "gateway": data.get("Gateway"),
            "macAddress": data.get("MacAddress"),
            "globalIpv6Address": data.get("GlobalIPv6Address"),
            "globalIpv6PrefixLength": data.get("GlobalIPv6PrefixLen"),
            "ipv6Gateway": data.get("IPv6Gateway"),
        }
        for network, data in sorted((settings.get("Networks") or {}).items())
    ]
    ports = [
        {
            "internal": int(spec.split("/")[0]),
            "protocol": spec.split("/")[1],
            "ip": binding.get("HostIp"),
            "external": int(binding.get("HostPort")),
        }
        for spec, bindings in sorted((settings.get("Ports") or {}).items())
        for binding in bindings or []
    ]
    state = info.get("State") or {}
    outputs: dict[str, Any] = {
        "id": container_id,
        "name": name,
        "networkDatas": network_datas,
        "bridge": settings.get("Bridge") or "",
    }
    if ports:
        outputs["ports"] = ports
    if not state.get("Running"):
        outputs["exitCode"] = state.get("ExitCode")
    return outputs
