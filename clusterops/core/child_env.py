"""The environment a child process (docker, redis-cli) gets: what it needs and nothing else.

Pulumi's language host hands the program the whole decrypted stack config, secrets included, in
PULUMI_CONFIG, and the CLI's own environment may hold PULUMI_CONFIG_PASSPHRASE or cloud
credentials; every provider process inherits that environment too. A child that receives
`os.environ` wholesale carries all of it in /proc/<pid>/environ, readable by its owner and by
root for as long as it runs. So children get an allow-list: where to find programs, whose
home and locale they run with, how to reach the Docker engine; never a secret.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

# Read by the programs we start (docker, redis-cli, redis-server) or by the C library under them.
# DOCKER_CONFIG/DOCKER_CERT_PATH/DOCKER_TLS_VERIFY and the SSL_* ones are paths and switches, not
# keys; SSH_AUTH_SOCK is a socket path for `ssh://` Docker hosts, whose key stays in the agent;
# the proxy settings are how the docker CLI reaches a `tcp://` engine from behind a proxy.
PASSED_THROUGH = (
    "PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR",
    "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK", "DOCKER_CONFIG", "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY", "SSL_CERT_FILE", "SSL_CERT_DIR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)


def child_env(extra: Mapping[str, str] | None = None,
              environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allow-listed part of `environ` (default: this process's), plus `extra`."""
    source = os.environ if environ is None else environ
    env = {name: source[name] for name in PASSED_THROUGH if name in source}
    env.update(extra or {})
    return env
