"""`python -m clusterops drill` maps what stops a drill to one error line and an exit code."""

from __future__ import annotations

import json

import pytest
import redis

from clusterops.cli import main as cli
from clusterops.cli.commands import drill as drill_command

ARGS = ["drill", "--node", "n1=127.0.0.1:6379", "--master", "n1",
        "--control-command", "true", "--json"]


@pytest.mark.parametrize(
    ("raised", "code", "says"),
    [
        (redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379"), 1, "ConnectionError"),
        (redis.AuthenticationError("invalid username-password pair"), 2, "password was refused"),
    ],
)
def test_a_redis_error_during_a_drill_is_reported_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    raised: Exception, code: int, says: str,
) -> None:
    def fails(*_args: object, **_kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(drill_command, "run_master_failure_drill", fails)
    monkeypatch.setenv("REDIS_PASSWORD", "pw-never-printed-1234")

    assert cli.main(ARGS) == code
    captured = capsys.readouterr()
    report = json.loads(captured.out)  # --json: stdout stays a JSON document
    assert report["ok"] is False and says in report["error"]
    (line,) = captured.err.splitlines()
    assert line.startswith("python -m clusterops drill: error: ") and says in line
    assert "pw-never-printed-1234" not in captured.out + captured.err
