"""ACL users (acl: true): who they are, what each may run, and the users.acl file. Pure code.

Four users, each with only what it needs, and the ``default`` user switched off:

- admin: everything. Used only by the bootstrap provider and the clusterops commands.
- app (name configurable, ``aclAppUser``): data commands and INFO; no other @admin or
  @dangerous command (CONFIG, FLUSHALL, CLUSTER RESET, KEYS, DEBUG, ...). Cluster clients
  still get what they need: CLUSTER SLOTS/SHARDS/NODES, READONLY and ASKING are in neither
  category (checked with ACL DRYRUN on redis-server 7.0.15). Rules configurable
  (``aclAppRules``).
- exporter: read-only, exactly what redis_exporter 1.45 runs on a scrape without key checks
  (found by scraping a node with this user and reading ACL LOG: CLIENT SETNAME was the one
  command the usual lists leave out).
- replication: what a replica sends its master (``masteruser``): AUTH, PING, REPLCONF, PSYNC.

Passwords are stored as SHA-256 hashes (``#<hex>``), so the file reveals none of them; it is
still delivered as a secret like the password file. The same lines are what the bootstrap applies
live with ``ACL SETUSER <name> reset ...`` (clusterops/provision/password_rotation.py): the
file is for the next start, SETUSER for the running node. Unlike ACL LOAD, which in 7.0
drops every client connection, SETUSER keeps connected clients connected.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass

ROLES = ("admin", "app", "exporter", "replication")
FIXED_NAMES = {"admin": "admin", "exporter": "exporter", "replication": "replication"}
DEFAULT_APP_USER = "app"
# +info: redis-py 4.3's RedisCluster (Debian bookworm's, the example app's image) runs INFO to
# check cluster_enabled before CLUSTER SLOTS, and INFO is @dangerous (seen on the deployed
# cluster: "no permissions to run the 'info' command"). It reveals no secret.
DEFAULT_APP_RULES = "~* &* +@all -@admin -@dangerous +info"
FIXED_RULES = {
    "admin": "~* &* +@all",
    "exporter": ("-@all +ping +info +config|get +cluster|info +slowlog|get +slowlog|len "
                 "+latency|latest +client|list +client|setname +select"),
    "replication": "-@all +psync +replconf +ping",
}
DEFAULT_USER_LINE = "user default off resetchannels -@all"

USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# Rule tokens an app rule set may hold: key and channel patterns, commands and categories.
# Everything about the user's state and passwords is managed here (on/off, >, <, #, !, nopass,
# reset...), and a selector would need quoting the file format does not give us.
_RULE = re.compile(r"(%R~|%W~|%RW~|~|&)\S+|[+-]@?[a-z0-9|_-]+|allkeys|resetkeys|allchannels|"
                   r"resetchannels|allcommands|nocommands")


@dataclass(frozen=True)
class AclUser:
    role: str
    name: str
    rules: str


def users(app_user: str = DEFAULT_APP_USER, app_rules: str = DEFAULT_APP_RULES
          ) -> tuple[AclUser, ...]:
    """The managed users, admin first."""
    names = {**FIXED_NAMES, "app": app_user}
    rules = {**FIXED_RULES, "app": app_rules}
    return tuple(AclUser(role, names[role], rules[role]) for role in ROLES)


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def render_users_acl(passwords: Mapping[str, str], app_user: str = DEFAULT_APP_USER,
                     app_rules: str = DEFAULT_APP_RULES) -> str:
    """users.acl: one ``user`` line per managed user (``passwords``: role -> password)."""
    lines = [DEFAULT_USER_LINE]
    for user in users(app_user, app_rules):
        if not passwords.get(user.role):
            raise ValueError(f"the {user.role} user's password is empty")
        lines.append(f"user {user.name} on #{password_hash(passwords[user.role])} {user.rules}")
    return "\n".join(lines) + "\n"


def parse_users_acl(text: str) -> list[tuple[str, list[str]]]:
    """(name, rule tokens) of every ``user`` line, in order."""
    parsed = []
    for line in text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "user":
            parsed.append((words[1], words[2:]))
    return parsed


def app_user_problems(name: str) -> list[str]:
    """Why the application user may not have this name (empty: it may)."""
    if not USER_NAME.fullmatch(name):
        return [f"{name!r} is not a user name. Fix: use letters, digits, '_', '-' or '.'"]
    if name == "default" or name in FIXED_NAMES.values():
        return [f"{name!r} is a user this stack already defines; the app user would replace its "
                "rules (as admin it would lock the bootstrap out). Fix: pick another name, e.g. "
                f"{DEFAULT_APP_USER}"]
    return []


def app_rules_problems(rules: str) -> list[str]:
    """Why these app rules are refused (empty: accepted). Only rule tokens: the user's state
    and passwords are managed by the stack."""
    tokens = rules.split()
    if not tokens:
        return [f"is empty. Fix: give ACL rules such as {DEFAULT_APP_RULES!r}"]
    bad = [t for t in tokens if not _RULE.fullmatch(t)]
    if bad:
        return [f"{', '.join(bad)}: not a key pattern, channel pattern, command or category "
                "rule. Passwords, on/off and reset are managed by the stack (set the password "
                f"with the password key). Fix: use rules such as {DEFAULT_APP_RULES!r}"]
    return []
