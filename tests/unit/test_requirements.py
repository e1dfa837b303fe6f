"""requirements.txt carries no Pulumi provider package that the program does not use.

Pulumi's Python language host reports every installed package that ships a pulumi-plugin.json
as a plugin the program requires, and the engine then insists on that plugin: an unused
pulumi-kubernetes in requirements.txt made an offline `pulumi up` fail looking for it.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROGRAM_SOURCES = [ROOT / "__main__.py", *sorted((ROOT / "components").glob("*.py"))]


def provider_packages() -> list[str]:
    names = []
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = re.split(r"[=<>~!\[ ;]", line.strip(), maxsplit=1)[0]
        if name.startswith("pulumi-") and name != "pulumi-policy":
            names.append(name)
    return names


def test_every_provider_package_in_requirements_is_imported_by_the_program():
    source = "\n".join(path.read_text() for path in PROGRAM_SOURCES)
    unused = [
        name for name in provider_packages()
        if not re.search(rf"^\s*(import|from)\s+{name.replace('-', '_')}\b", source, re.M)
    ]
    assert provider_packages(), "requirements.txt names no provider package at all"
    assert unused == [], (
        f"{unused} are in requirements.txt but the program imports none of them; the language "
        "host would make every `pulumi up` require their plugins"
    )


def test_every_pinned_provider_package_has_its_plugin_built_at_that_version():
    """The engine insists on exactly the plugin version each SDK names, and no plugin can be
    downloaded here: scripts/install-pulumi.sh must build and install one per provider package,
    reading the version from requirements.txt (never a second copy of it)."""
    installer = (ROOT / "scripts" / "install-pulumi.sh").read_text()
    assert 's/^pulumi-$1==' in installer, "install-pulumi.sh must read versions from the pins"
    pinned = {
        name: version
        for name, version in (
            line.split("==", 1) for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.startswith("pulumi-") and "==" in line
        )
        if name != "pulumi-policy"
    }
    assert set(pinned) == {"pulumi-docker", "pulumi-kubernetes", "pulumi-random"}, pinned
    for name, version in pinned.items():
        plugin = name.removeprefix("pulumi-")
        builder = ROOT / "scripts" / f"build-{plugin}-provider.sh"
        assert builder.exists(), f"no {builder.name} for {name}"
        # install_provider NAME reads pulumi-NAME's pin, builds and installs that version.
        assert re.search(rf"^install_provider {plugin}$", installer, re.M), (
            f"install-pulumi.sh never builds and installs the {plugin} provider")
        assert version.count(".") == 2, f"{name} must be pinned to an exact version"
