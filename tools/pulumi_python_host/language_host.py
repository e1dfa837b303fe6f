"""Pulumi's LanguageRuntime gRPC service for Python programs (see README.md for why it exists).

The engine starts this as the plugin `pulumi-language-python` with the engine's address as the
last argument, reads the port it listens on from the first line of stdout, then calls it. It
answers the calls `preview`/`up`/`destroy` make: which resource plugins the program needs (from
the `pulumi-plugin.json` files its installed packages ship), and running the program with the
interpreter of the project's virtualenv (`runtime.options.virtualenv` in Pulumi.yaml).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import json_format
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2

RUN_PROGRAM = Path(__file__).with_name("run_program.py")
# How a Python policy pack is served: the module the official distribution's
# `pulumi-analyzer-policy-python` script runs. It takes the engine address and the pack's
# directory, and runs the pack's __main__.py (which starts pulumi_policy's Analyzer server).
POLICY_MODULE = "pulumi.policy"
ERROR_REPORTED = 32  # run_program.py's exit code when the engine already has the error

# Runs under the program's interpreter: every installed package that ships a pulumi-plugin.json
# declares the resource plugin (name, version, download server) it needs.
_LIST_PLUGINS = r"""
import importlib.metadata as md, json
found = {}
for dist in md.distributions():
    for path in dist.files or []:
        if path.name != "pulumi-plugin.json":
            continue
        data = json.loads(path.read_text())
        if data.get("resource"):
            name = data.get("name") or dist.metadata["Name"].removeprefix("pulumi_")
            found[name] = {"name": name, "version": data.get("version") or dist.version,
                           "server": data.get("server") or ""}
print(json.dumps(sorted(found.values(), key=lambda p: p["name"])))
"""

_LIST_DEPENDENCIES = r"""
import importlib.metadata as md, json
print(json.dumps(sorted({d.metadata["Name"]: d.version for d in md.distributions()}.items())))
"""


class LanguageHostError(Exception):
    """A problem with the project's Python setup, worded for the person running pulumi."""


def _options(info: language_pb2.ProgramInfo | None) -> dict[str, Any]:
    if info is None or not info.HasField("options"):
        return {}
    return json_format.MessageToDict(info.options)


def project_python(root: Path, options: dict[str, Any]) -> str:
    """The program's interpreter: the project's virtualenv when Pulumi.yaml names one."""
    virtualenv = options.get("virtualenv")
    if not virtualenv:
        return os.environ.get("PULUMI_PYTHON_CMD", "python3")
    venv = Path(virtualenv) if os.path.isabs(virtualenv) else root / virtualenv
    python = venv / "bin" / "python"
    if not python.exists():
        raise LanguageHostError(
            f"the virtualenv {venv} named by Pulumi.yaml (runtime.options.virtualenv) does not "
            f"exist; create it: python3 -m venv {venv} && {venv}/bin/pip install -r "
            f"{root}/requirements.txt (or run `pulumi install`)"
        )
    return str(python)


def _run_json(python: str, script: str, cwd: Path) -> Any:
    done = subprocess.run(
        [python, "-c", script], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise LanguageHostError(f"{python} could not list its packages: {done.stderr.strip()}")
    return json.loads(done.stdout)


class PythonLanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self.engine_address = engine_address

    def _where(self, info: language_pb2.ProgramInfo, pwd: str) -> tuple[Path, Path, str]:
        root = Path(info.root_directory or pwd)
        program = Path(info.program_directory or pwd)
        return root, program, project_python(root, _options(info))

    def Handshake(self, request, context):  # noqa: N802 - gRPC method names
        if request.engine_address:
            self.engine_address = request.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):  # noqa: N802
        return plugin_pb2.PluginInfo(version=importlib.metadata.version("pulumi"))

    def _ask_program_python(self, request, context, script: str) -> Any:
        """Run `script` under the program's interpreter; a setup problem aborts the call."""
        try:
            root, _, python = self._where(request.info, request.pwd)
            return _run_json(python, script, root)
        except LanguageHostError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def GetRequiredPlugins(self, request, context):  # noqa: N802
        plugins = self._ask_program_python(request, context, _LIST_PLUGINS)
        return language_pb2.GetRequiredPluginsResponse(
            plugins=[
                plugin_pb2.PluginDependency(
                    name=p["name"], kind="resource", version=p["version"], server=p["server"]
                )
                for p in plugins
            ]
        )

    def GetProgramDependencies(self, request, context):  # noqa: N802
        dependencies = self._ask_program_python(request, context, _LIST_DEPENDENCIES)
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[language_pb2.DependencyInfo(name=n, version=v) for n, v in dependencies]
        )

    def About(self, request, context):  # noqa: N802
        root = Path(request.info.root_directory or os.getcwd())
        try:
            python = project_python(root, _options(request.info))
        except LanguageHostError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        version = subprocess.run(
            [python, "--version"], capture_output=True, text=True, check=False
        ).stdout.split()[-1:]
        return language_pb2.AboutResponse(executable=python, version="".join(version))

    def InstallDependencies(self, request, context) -> Iterator[Any]:  # noqa: N802
        root = Path(request.info.root_directory or request.directory)
        virtualenv = _options(request.info).get("virtualenv")
        commands: list[list[str]] = []
        python = os.environ.get("PULUMI_PYTHON_CMD", "python3")
        if virtualenv:
            venv = Path(virtualenv) if os.path.isabs(virtualenv) else root / virtualenv
            if not (venv / "bin" / "python").exists():
                commands.append([python, "-m", "venv", str(venv)])
            python = str(venv / "bin" / "python")
        if (root / "requirements.txt").exists():
            commands.append([python, "-m", "pip", "install", "-r", str(root / "requirements.txt")])
        for command in commands:
            banner = f"$ {' '.join(command)}\n".encode()
            yield language_pb2.InstallDependenciesResponse(stdout=banner)
            done = subprocess.run(command, cwd=root, capture_output=True, check=False)
            yield language_pb2.InstallDependenciesResponse(stdout=done.stdout, stderr=done.stderr)
            if done.returncode != 0:
                context.abort(grpc.StatusCode.UNKNOWN, f"{' '.join(command)} failed")

    def RunPlugin(self, request, context) -> Iterator[Any]:  # noqa: N802
        """Serve a Python policy pack (`pulumi preview --policy-pack DIR`).

        The v3.274 engine runs a pack through the language host named by PulumiPolicy.yaml's
        runtime whenever that host exists, instead of the legacy `pulumi-analyzer-policy-python`
        script (sdk/go/common/resource/plugin/analyzer_plugin.go, NewPolicyAnalyzer). It reads
        the analyzer's port from the first stdout line streamed back here, and cancels the call
        to stop the plugin. Other plugin kinds (Python resource providers) are not served.
        """
        if request.kind != "analyzer":
            context.abort(grpc.StatusCode.UNIMPLEMENTED,
                          f"this Python language host runs policy packs only, not {request.kind!r} "
                          "plugins (see tools/pulumi_python_host/README.md)")
        try:
            root, program, python = self._where(request.info, request.pwd)
        except LanguageHostError as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"policy pack: {exc}")
        # The engine's arguments end with its address; logging/tracing flags may come first and
        # pulumi.policy's parser would misread `-v=N`, so pass only the address and the pack.
        engine_address = request.args[-1] if request.args else self.engine_address
        env = dict(item.split("=", 1) for item in request.env if "=" in item) or dict(os.environ)
        process = subprocess.Popen(
            [python, "-u", "-m", POLICY_MODULE, engine_address, str(program)],
            cwd=request.pwd or root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        # The engine cancels the call when it is done with the pack; the server in the pack
        # then runs forever unless stopped here.
        context.add_callback(process.terminate)
        yield from _stream(process)


    def Run(self, request, context):  # noqa: N802
        try:
            root, program, python = self._where(request.info, request.pwd)
        except LanguageHostError as exc:
            return language_pb2.RunResponse(error=str(exc))
        settings = {
            "project": request.project,
            "stack": request.stack,
            "organization": request.organization,
            "root_directory": str(root),
            "program_directory": str(program),
            "parallel": request.parallel,
            "dry_run": request.dryRun,
            "monitor_address": request.monitor_address,
            "engine_address": self.engine_address,
            "config": dict(request.config),
            "config_secret_keys": list(request.configSecretKeys),
        }
        env = dict(os.environ)
        # The SDK would otherwise read a stale config from an outer `pulumi` in the environment.
        env.pop("PULUMI_CONFIG", None)
        env.pop("PULUMI_CONFIG_SECRET_KEYS", None)
        done = subprocess.run(
            [python, "-u", str(RUN_PROGRAM), *request.args],
            cwd=request.pwd or root,
            input=json.dumps(settings),
            text=True,
            env=env,
            check=False,
        )
        if done.returncode == 0:
            return language_pb2.RunResponse()
        if done.returncode == ERROR_REPORTED:
            return language_pb2.RunResponse(bail=True)
        return language_pb2.RunResponse(
            error=f"the Python program exited with code {done.returncode}"
        )


def _stream(process: subprocess.Popen[bytes]) -> Iterator[Any]:
    """The child's stdout and stderr as RunPluginResponse chunks, then its exit code."""
    chunks: list[tuple[str, bytes]] = []
    ready = threading.Condition()
    open_pipes = 2

    def pump(name: str, pipe: Any) -> None:
        nonlocal open_pipes
        # read1: forward what is there now (the port line) without waiting for a full buffer.
        while data := pipe.read1(65536):
            with ready:
                chunks.append((name, data))
                ready.notify()
        with ready:
            open_pipes -= 1
            ready.notify()

    for name, pipe in (("stdout", process.stdout), ("stderr", process.stderr)):
        threading.Thread(target=pump, args=(name, pipe), daemon=True).start()
    while True:
        with ready:
            while not chunks and open_pipes:
                ready.wait()
            pending, chunks[:] = list(chunks), []
            finished = not open_pipes
        for name, data in pending:
            yield language_pb2.RunPluginResponse(**{name: data})
        if finished and not pending:
            break
    yield language_pb2.RunPluginResponse(exitcode=process.wait())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("engine_address", nargs="?", default="")
    # The engine may pass flags real hosts accept (-tracing, -root, ...); none change what we do.
    args, _ = parser.parse_known_args()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)],
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(
        PythonLanguageHost(args.engine_address), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    # The engine stops its plugins with a signal when it is done: that is a normal exit.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: server.stop(grace=0))
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    sys.exit(main())
