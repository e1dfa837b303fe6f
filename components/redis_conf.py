"""The files each node container reads: redis.conf (no secrets) and the two secret files.

The password never reaches a command line or an environment variable (both are visible in
`docker inspect` and the process list), nor a container input: redis.conf includes
secrets/auth.conf from the node's secrets volume, and the healthcheck feeds secrets/password to
`redis-cli --askpass` on stdin.

redis.conf is split in two on purpose: ``live_settings`` (what Redis changes at run time with
CONFIG SET, applied on every node by the bootstrap provider: no restart) and ``restart_lines``
(what a node only reads at start; a change to it replaces the container, see
``restart_digest``).
"""

import hashlib

from clusterops.provision.settings import TLS_FILE_SETTINGS
from components.spec import ClusterSpec
from components.topology import PlannedNode

CONF_DIR = "/usr/local/etc/redis"
# A read-only volume of its own (components/secret_files.py): rotating the password rewrites
# these files without replacing the container.
SECRETS_DIR = f"{CONF_DIR}/secrets"
AUTH_CONF_NAME = "auth.conf"
# The healthcheck's password: the cluster password, or with ACL users the exporter user's
# (read-only, and enough for PING).
PASSWORD_FILE_NAME = "password"
AUTH_CONF_PATH = f"{SECRETS_DIR}/{AUTH_CONF_NAME}"
PASSWORD_FILE_PATH = f"{SECRETS_DIR}/{PASSWORD_FILE_NAME}"
# acl: true: the users (password hashes only), read at start through `aclfile`.
USERS_ACL_NAME = "users.acl"
USERS_ACL_PATH = f"{SECRETS_DIR}/{USERS_ACL_NAME}"
# The files here are owned by REDIS_UID (components/target_neutral.py), the official redis
# image's user.
DATA_DIR = "/data"

# TLS material (tls: true), in the same secrets volume: the CA, the node's certificate and key.
TLS_CA_NAME = "tls-ca.crt"
TLS_CERT_NAME = "tls-node.crt"
TLS_KEY_NAME = "tls-node.key"
TLS_CA_PATH = f"{SECRETS_DIR}/{TLS_CA_NAME}"
TLS_CERT_PATH = f"{SECRETS_DIR}/{TLS_CERT_NAME}"
TLS_KEY_PATH = f"{SECRETS_DIR}/{TLS_KEY_NAME}"

HEALTHCHECK_COMMAND = (
    f"redis-cli --no-auth-warning --askpass ping < {PASSWORD_FILE_PATH} | grep -q PONG"
)
TLS_HEALTHCHECK_COMMAND = (
    f"redis-cli --tls --cacert {TLS_CA_PATH} --no-auth-warning --askpass ping "
    f"< {PASSWORD_FILE_PATH} | grep -q PONG"
)


def healthcheck_command(tls: bool, user: str | None = None, cli: str = "redis-cli") -> str:
    """PING with the password from the secrets volume (stdin, never argv); ``user``: the ACL
    user it belongs to (acl: true); ``cli``: the engine's CLI (valkey-cli for Valkey, whose
    images need not carry the redis-cli link)."""
    command = TLS_HEALTHCHECK_COMMAND if tls else HEALTHCHECK_COMMAND
    if user:
        command = command.replace("redis-cli ", f"redis-cli --user {user} ", 1)
    return command.replace("redis-cli ", f"{cli} ", 1)


def readiness_command(tls: bool, user: str | None = None, cli: str = "redis-cli") -> str:
    """Kubernetes readiness: the authenticated PING, and a master or a replica whose
    replication link is up. A replica still loading or syncing is not yet a second copy: the
    rolling replacement and the PodDisruptionBudget both wait on readiness, so neither takes
    the master away until its replica holds the data."""
    ping = healthcheck_command(tls, user, cli)
    flags = ping.split(" --askpass ", 1)[0]  # the CLI with the same TLS and user flags
    return (f"{ping} && {flags} --askpass info replication < {PASSWORD_FILE_PATH} "
            "| grep -qE '^(role:master|master_link_status:up)'")


def tls_settings() -> dict[str, str]:
    """The TLS file directives: CONFIG SET of one of them (even to the same path) makes Redis
    load the files again (VOLATILE_CONFIG in config.c), which is how rotated certificates
    take effect without a restart."""
    return dict(zip(TLS_FILE_SETTINGS, (TLS_CERT_PATH, TLS_KEY_PATH, TLS_CA_PATH), strict=True))


# redis.conf lives in the node's files volume (components/secret_files.py), beside auth.conf,
# not in a container input: a changed setting rewrites the file in place and replaces nothing.
REDIS_CONF_NAME = "redis.conf"
REDIS_CONF_PATH = f"{SECRETS_DIR}/{REDIS_CONF_NAME}"
# Directives Redis 7.0 refuses to change at run time ("can't set immutable/protected config"),
# and the node's address, port and announced identity, which we never change live: a change
# to any of these is a new redis-server process, i.e. a replaced container.
RESTART_DIRECTIVES = (
    "bind", "port", "dir", "cluster-enabled", "cluster-config-file",
    "cluster-announce-ip", "cluster-announce-hostname", "cluster-preferred-endpoint-type",
    "cluster-announce-port", "cluster-announce-bus-port",
    "replica-announce-ip", "replica-announce-port",
    "tls-port", "tls-cluster", "tls-replication", "tls-auth-clients", "cluster-announce-tls-port",
    "appendfilename", "appenddirname", "dbfilename", "logfile", "include",
)
EMPTY = '""'  # an empty argument in redis.conf (CONFIG SET takes "")


def live_settings(spec: ClusterSpec) -> dict[str, str]:
    """The directives every node can change at run time with CONFIG SET (all accepted by
    redis-server 7.0.15: tests/integration/test_live_settings.py). The bootstrap provider
    applies these on every running node, and the same values are in redis.conf for the next
    start, so changing one restarts nothing. Values are CONFIG SET arguments ("" = empty).
    """
    return {
        # A password is always set (requirepass), so protected-mode adds nothing here.
        "protected-mode": "no",
        "cluster-node-timeout": str(spec.node_timeout_ms),
        # 0: a replica may fail over however long its link was down (redis/redis#2875);
        # availability first, as the guide's <5 s failover promise needs.
        "cluster-replica-validity-factor": str(spec.replica_validity_factor),
        "cluster-require-full-coverage": "yes",
        "cluster-allow-reads-when-down": "no",
        "cluster-migration-barrier": "1",
        "appendonly": "yes" if spec.appendonly else "no",
        "appendfsync": spec.appendfsync,
        "aof-use-rdb-preamble": "yes",
        "save": " ".join(f"{seconds} {changes}" for seconds, changes in spec.rdb_save),
        "maxmemory": spec.maxmemory,
        "maxmemory-policy": spec.maxmemory_policy,
        "min-replicas-to-write": str(spec.min_replicas_to_write),
        "min-replicas-max-lag": "10",
        "repl-diskless-sync": "yes",
        # Start the transfer as soon as every planned replica is waiting, instead of after
        # the default 5 s delay: replicas are in sync moments after the cluster forms.
        "repl-diskless-sync-max-replicas": str(spec.replicas_per_master),
        "tcp-keepalive": "60",
        "loglevel": "notice",
        **(tls_settings() if spec.tls else {}),
    }


def restart_lines(node: PlannedNode, announce_hostname: str | None = None,
                  tls: bool = False) -> list[str]:
    """The directives a running node keeps until it restarts (see RESTART_DIRECTIVES)."""
    if announce_hostname is None:
        # Static IPs (or the host's address) make the announced address stable across full
        # restarts. With host-address, the node also announces its published ports, and its
        # replicas report that address to their master (INFO replication), not a NAT address.
        announce = [f"cluster-announce-ip {node.announce_ip}"]
        if node.host_address:
            announce += [f"replica-announce-ip {node.announce_ip}",
                         f"replica-announce-port {node.announce_port}"]
    else:
        announce = [
            f"cluster-announce-hostname {announce_hostname}",
            "cluster-preferred-endpoint-type hostname",
        ]
    if tls:
        # Only TLS: no plaintext port; replication and the bus use TLS too. Clients need the
        # CA to trust the node; a client certificate is checked when one is presented (the
        # nodes present theirs to each other), the password authenticates clients.
        ports = ["port 0", f"tls-port {node.port}", "tls-cluster yes", "tls-replication yes",
                 "tls-auth-clients optional",
                 f"cluster-announce-tls-port {node.announce_port}"]
    else:
        ports = [f"port {node.port}"]
    return [
        "bind 0.0.0.0",
        *ports,
        f"dir {DATA_DIR}",
        "cluster-enabled yes",
        # nodes.conf lives in the volume: identity and peers survive container replacement.
        "cluster-config-file nodes.conf",
        *announce,
        f"cluster-announce-port {node.announce_port}",
        f"cluster-announce-bus-port {node.announce_bus_port}",
        'appendfilename "appendonly.aof"',
        'appenddirname "appendonlydir"',
        "dbfilename dump.rdb",
        'logfile ""',
    ]


def render_redis_conf(
    spec: ClusterSpec, node: PlannedNode, announce_hostname: str | None = None
) -> str:
    """redis.conf for one node. Everything here is safe to show in `pulumi preview --diff`.

    ``announce_hostname`` (Kubernetes): the node's stable DNS name. A pod gets a new IP when it
    is rescheduled, so instead of a static ``cluster-announce-ip`` the node announces its name
    and clients are redirected (MOVED/ASK, CLUSTER SHARDS/SLOTS) by name, not by a stale IP.
    """
    lines = [
        f"# {node.name}: generated by the alphapulse-redis-cluster Pulumi program.",
        "# Edits are replaced on the next deploy; change the stack config instead.",
        "# Read at start only:",
        *restart_lines(node, announce_hostname, spec.tls),
        "# Changeable at run time (CONFIG SET):",
        *(f"{key} {value or EMPTY}" for key, value in live_settings(spec).items()),
        # Last, so the password lines cannot be overridden by anything above.
        f"include {AUTH_CONF_PATH}",
    ]
    return "\n".join(lines) + "\n"


def restart_digest(node: PlannedNode, tls: bool = False) -> str:
    """A digest of what a running node only picks up by restarting: a container label, so a
    change to it is a previewed container replacement instead of a file nobody reads."""
    text = "\n".join(restart_lines(node, tls=tls))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _quote(value: str) -> str:
    """A redis.conf double-quoted string (sdssplitargs understands \\\\ and \\")."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_auth_conf(password: str) -> str:
    """The requirepass/masterauth pair (replicas authenticate to their master with it)."""
    quoted = _quote(password)
    return f"requirepass {quoted}\nmasterauth {quoted}\n"


def render_acl_auth_conf(masteruser: str, masterauth: str) -> str:
    """acl: true: the users come from users.acl (no requirepass: the default user is off), and
    replicas authenticate to their master as the replication user."""
    return (f"aclfile {USERS_ACL_PATH}\nmasteruser {_quote(masteruser)}\n"
            f"masterauth {_quote(masterauth)}\n")
