"""The real Pulumi CLI and engine, driven as a user drives them, for the end-to-end tier.

Each `PulumiStack` is this project copied into a temporary directory (so `pulumi config set`
and `stack init` never touch the repository's Pulumi.<stack>.yaml), sharing the project's
virtualenv, with its own file backend and a passphrase secrets provider. The CLI, the language
host and the docker provider come from scripts/install-pulumi.sh.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PROJECT = "alphapulse-redis-cluster"
TOOLS_BIN = Path(
    os.environ.get("PULUMI_TOOLS_DIR", Path.home() / ".cache" / "alphapulse-pulumi")
) / "bin"
# What the program needs at run time; tests, scripts and docs stay behind.
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "clusterops",
                 "monitoring")
PASSPHRASE = "e2e-tests-only"  # encrypts the throwaway test stacks' secrets, nothing else
COMMAND_TIMEOUT_S = 900


class PulumiCommandError(AssertionError):
    """A pulumi command failed; the message carries its output (secrets are never shown)."""


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{TOOLS_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        PULUMI_SKIP_UPDATE_CHECK="1",
        PULUMI_CONFIG_PASSPHRASE=PASSPHRASE,
        PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION="true",
        NO_COLOR="1",
    )
    return env


def pulumi_missing() -> str | None:
    """Why the real CLI cannot run here, or None."""
    if shutil.which("pulumi", path=cli_env()["PATH"]) is None:
        return "no pulumi CLI: run scripts/install-pulumi.sh (it builds one from Go modules)"
    return None


def ensure_venv(directory: Path) -> Path:
    """``directory``/venv filled from ``directory``/requirements.txt, as `pulumi install` makes
    a project's (Pulumi.yaml or PulumiPolicy.yaml: runtime.options.virtualenv)."""
    venv = directory / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "-r", str(directory / "requirements.txt")],
        check=True,
    )
    return venv


def ensure_project_venv() -> Path:
    return ensure_venv(PROJECT_ROOT)


@dataclass
class PulumiStack:
    name: str
    workdir: Path
    backend: Path
    env: dict[str, str] = field(default_factory=cli_env)

    def __post_init__(self) -> None:
        self.env["PULUMI_BACKEND_URL"] = f"file://{self.backend}"

    # -- running the CLI ------------------------------------------------------------------
    def run(self, *args: str, check: bool = True, timeout: float = COMMAND_TIMEOUT_S
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["pulumi", *args], cwd=self.workdir, env=self.env, capture_output=True, text=True,
            timeout=timeout, check=False,
        )
        if check and done.returncode != 0:
            # The engine's diagnostics (the errors) come before the outputs, which can be long.
            diagnostics = done.stdout.partition("Diagnostics:")[2].partition("\nOutputs:")[0]
            if done.stdout.lstrip().startswith("{"):  # --json: the diagnostics are a list
                with contextlib.suppress(ValueError):
                    diagnostics = "\n".join(d.get("message", "") for d in json.loads(
                        done.stdout).get("diagnostics", []) if d.get("severity") == "error")
            raise PulumiCommandError(
                f"`pulumi {' '.join(args)}` exited {done.returncode}\n"
                f"--- diagnostics\n{diagnostics[-6000:]}\n"
                f"--- stdout (last 6000 chars)\n{done.stdout[-6000:]}\n"
                f"--- stderr (last 3000 chars)\n{done.stderr[-3000:]}"
            )
        return done

    def set_config(self, values: Mapping[str, str], *, secret: bool = False) -> None:
        for key, value in values.items():
            full = key if ":" in key else f"{PROJECT}:{key}"
            args = ["config", "set", "--stack", self.name, full]
            if secret:
                args.append("--secret")
            # `--` then the value: a value may start with '-'.
            self.run(*args, "--", value)

    def remove_config(self, key: str) -> None:
        full = key if ":" in key else f"{PROJECT}:{key}"
        self.run("config", "rm", "--stack", self.name, full)

    # -- what users run -------------------------------------------------------------------
    def preview(self, *extra: str, check: bool = True) -> dict[str, Any]:
        """`pulumi preview --json`: the steps the engine plans, and its change summary."""
        done = self.run("preview", "--stack", self.name, "--json", *extra, check=check)
        return json.loads(done.stdout) if done.stdout.strip().startswith("{") else {
            "returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr}

    def changes(self) -> list[tuple[str, str]]:
        """(operation, resource name) of every step a preview plans that is not `same`."""
        steps = self.preview().get("steps", [])
        return sorted(
            (step["op"], step["urn"].rsplit("::", 1)[-1])
            for step in steps
            if step["op"] != "same"
        )

    def up(self, *extra: str) -> dict[str, Any]:
        self.run("up", "--stack", self.name, "--yes", "--skip-preview", *extra)
        return self.outputs()

    def outputs(self) -> dict[str, Any]:
        done = self.run("stack", "output", "--stack", self.name, "--json", "--show-secrets")
        return json.loads(done.stdout)

    def write_outputs(self, path: Path) -> None:
        """The outputs, with the password, in a file only its owner can read (never 0644
        for a moment: the file is created with mode 0600)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(self.outputs(), handle, indent=2, sort_keys=True)

    def destroy(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("destroy", "--stack", self.name, "--yes", "--skip-preview", *extra,
                        check=check)

    def state(self) -> dict[str, Any]:
        """The checkpoint as `pulumi stack export` gives it (secrets stay encrypted)."""
        return json.loads(self.run("stack", "export", "--stack", self.name).stdout)

    def remove(self) -> None:
        self.run("stack", "rm", "--stack", self.name, "--yes", "--force", check=False)


def new_stack(root: Path, stack: str, config: Mapping[str, str],
              secret_config: Mapping[str, str] | None = None,
              stack_file: str | None = None) -> PulumiStack:
    """A fresh stack named `stack` of a copy of this project under `root`, its config file
    starting as the repository's Pulumi.<stack_file or stack>.yaml plus `config`."""
    ensure_project_venv()
    workdir = root / "project"
    workdir.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, workdir / name, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, workdir / name)
    if not (workdir / "venv").exists():
        (workdir / "venv").symlink_to(PROJECT_ROOT / "venv")
    template = PROJECT_ROOT / f"Pulumi.{stack_file or stack}.yaml"
    if template.exists():
        shutil.copy2(template, workdir / f"Pulumi.{stack}.yaml")
    backend = root / "backend"
    backend.mkdir(exist_ok=True)
    handle = PulumiStack(stack, workdir, backend)
    handle.run("stack", "init", stack, "--secrets-provider", "passphrase")
    handle.set_config(config)
    if secret_config:
        handle.set_config(secret_config, secret=True)
    return handle
