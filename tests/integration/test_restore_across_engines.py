"""Moving data between engines with `python -m clusterops backup` and `restore`, the way a
stack changes engine (a new stack, then the data): Redis 7.0.15 (Debian's) into Valkey 8.0.1,
and Valkey's backup back into Redis 7.0, whose server cannot read Valkey's RDB format 11.

Every type and TTL comes back, read by a client independently of the restore's own checks;
what cannot go (a stream into the older format) is refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.test_restore import cluster, fill, formed, run_clusterops, snapshot
from tests.support.engines import require_engine

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # three clusters: full suite only


def test_redis_70_into_valkey_and_valkeys_backup_back_into_redis_70(
        redis_nodes_factory, tmp_path: Path) -> None:
    valkey = require_engine("valkey-8.0")
    redis_70 = formed(redis_nodes_factory(6))
    fill(cluster(redis_70))
    original = snapshot(cluster(redis_70))
    done = run_clusterops("backup", "--dest", str(tmp_path / "redis"), "--json", group=redis_70)
    assert done.returncode == 0, done.stdout + done.stderr
    from_redis = json.loads(done.stdout)["folder"]

    into_valkey = formed(redis_nodes_factory(6, server=valkey.server))
    done = run_clusterops("restore", "--from", from_redis, group=into_valkey)
    assert done.returncode == 0, done.stdout + done.stderr
    assert snapshot(cluster(into_valkey)) == original

    # Valkey writes RDB 11: Debian's redis-check-rdb 7.0 cannot check it, and says what to do.
    done = run_clusterops("backup", "--dest", str(tmp_path / "unchecked"), group=into_valkey,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot read RDB format 11" in done.stdout + done.stderr
    assert "CLUSTEROPS_SERVER_BIN" in done.stdout + done.stderr
    engine_tools = {"CLUSTEROPS_SERVER_BIN": str(valkey.bin_dir)}
    done = run_clusterops("backup", "--dest", str(tmp_path / "valkey"), "--json",
                          group=into_valkey, env=engine_tools)
    assert done.returncode == 0, done.stdout + done.stderr
    from_valkey = json.loads(done.stdout)["folder"]

    # A stream has no by-value path into the older format: refused, nothing written.
    back = formed(redis_nodes_factory(6))
    done = run_clusterops("restore", "--from", from_valkey, group=back, env=engine_tools)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "of type stream" in done.stderr and "nothing was written" in done.stderr
    assert snapshot(cluster(back))["keys"] == 0

    # Without it, everything else comes back into Redis 7.0, by command, verified.
    cluster(into_valkey).delete("stream:{t}")
    done = run_clusterops("backup", "--dest", str(tmp_path / "valkey-2"), "--json",
                          group=into_valkey, env=engine_tools)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run_clusterops("restore", "--from", json.loads(done.stdout)["folder"], group=back,
                          env=engine_tools)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "values go by command" in done.stderr
    restored = snapshot(cluster(back))
    without_stream = {**original, "stream:{t}": [], "keys": original["keys"] - 1}
    assert restored == without_stream
