"""Helpers for checking monitoring against real metrics.

- ``parse_exposition``: samples of the Prometheus text format (what /metrics and /scrape serve),
  read with prometheus_client's own parser.
- ``promql_metric_names``: the metric names a PromQL expression reads. A small tokenizer, not a
  parser: it drops strings, label matchers, ranges and label lists, then keeps identifiers that
  are not keywords and not followed by "(" (functions and aggregations). That is enough for the
  question the tests ask ("does the exporter export every metric we query?") and fails loudly
  on text it does not understand.
- Loaders for the rule file and the Grafana dashboard, and Grafana variable substitution.
"""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

MONITORING_DIR = Path(__file__).resolve().parents[2] / "monitoring"
RULES_PATH = MONITORING_DIR / "alerts.yml"
RULES_TEST_PATH = MONITORING_DIR / "alerts_test.yml"
DASHBOARD_PATH = MONITORING_DIR / "dashboard.json"

# Series Prometheus makes itself (per scrape, or for alerts); no exporter exports them.
PROMETHEUS_BUILTIN_METRICS = frozenset(
    {
        "up",
        "ALERTS",
        "ALERTS_FOR_STATE",
        "scrape_duration_seconds",
        "scrape_samples_scraped",
        "scrape_samples_post_metric_relabeling",
        "scrape_series_added",
    }
)

# PromQL keywords and aggregation operators (aggregations may be followed by by/without
# before their parenthesis, so "not followed by (" alone would not catch them).
_KEYWORDS = frozenset(
    {
        "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset",
        "and", "or", "unless", "atan2", "inf", "nan", "start", "end",
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile",
    }
)
_LABEL_LIST_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right"}
)
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)[A-Za-z0-9_]*")
_OPERATORS = "+-*/%^=!<>,@"
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(["'`])([^"'`]+)\1""")


class PromQLTokenError(ValueError):
    """The expression holds something the tokenizer does not know."""


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


# --- exposition format ----------------------------------------------------------------------


def parse_exposition(text: str) -> list[Sample]:
    """Samples of a text-format scrape, parsed by prometheus_client (the reference parser).

    Raises ValueError on text that is not the exposition format.
    """
    return [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def metric_names(samples: list[Sample]) -> set[str]:
    return {sample.name for sample in samples}


def sample_value(samples: list[Sample], name: str) -> float | None:
    """The value of the first sample with that name (None when absent)."""
    for sample in samples:
        if sample.name == name:
            return sample.value
    return None


# --- PromQL ---------------------------------------------------------------------------------


def promql_metric_names(expr: str) -> set[str]:
    """Metric names read by a PromQL expression (Grafana variables are allowed in it)."""
    names: set[str] = set()
    tokens = list(_tokens(expr))
    index = 0
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "matchers":
            names.update(match.group(2) for match in _NAME_MATCHER.finditer(text))
        elif (
            kind == "ident"
            and text.lower() not in _KEYWORDS
            and following != ("punct", "(")  # a function call
        ):
            names.add(text)
        index += 1
    return names


def _tokens(expr: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, text): ident, number, string, matchers ({...}), range ([...]),
    group ((...) directly after a label-list keyword), punct."""
    pos = 0
    previous_ident = ""
    while pos < len(expr):
        char = expr[pos]
        if char.isspace():
            pos += 1
            continue
        if char == "#":
            end = expr.find("\n", pos)
            pos = len(expr) if end == -1 else end
            continue
        if char in "\"'`":
            end = _string_end(expr, pos)
            yield "string", expr[pos:end]
            pos = end
            previous_ident = ""
            continue
        if char == "{":
            end = _closing(expr, pos, "{", "}")
            yield "matchers", expr[pos:end]
            pos = end
            previous_ident = ""
            continue
        if char == "[":
            end = _closing(expr, pos, "[", "]")
            yield "range", expr[pos:end]
            pos = end
            previous_ident = ""
            continue
        if char == "(" and previous_ident in _LABEL_LIST_KEYWORDS:
            end = _closing(expr, pos, "(", ")")
            yield "group", expr[pos:end]
            pos = end
            previous_ident = ""
            continue
        if char == "$":
            # Grafana variable: $name, ${name}, ${name:format}
            if expr.startswith("${", pos):
                pos = _closing(expr, pos + 1, "{", "}")
            else:
                match = _IDENT.match(expr, pos + 1)
                if not match:
                    raise PromQLTokenError(f"lone $ at column {pos} in {expr!r}")
                pos = match.end()
            yield "variable", ""
            previous_ident = ""
            continue
        match = _NUMBER.match(expr, pos) if (char.isdigit() or char == ".") else None
        if match:
            yield "number", match.group(0)
            pos = match.end()
            previous_ident = ""
            continue
        match = _IDENT.match(expr, pos)
        if match:
            yield "ident", match.group(0)
            previous_ident = match.group(0).lower()
            pos = match.end()
            continue
        if char in "()" or char in _OPERATORS:
            yield "punct", char
            pos += 1
            previous_ident = ""
            continue
        raise PromQLTokenError(f"unexpected {char!r} at column {pos} in {expr!r}")


def _string_end(expr: str, start: int) -> int:
    quote = expr[start]
    pos = start + 1
    while pos < len(expr):
        if expr[pos] == "\\" and quote != "`":
            pos += 2
            continue
        if expr[pos] == quote:
            return pos + 1
        pos += 1
    raise PromQLTokenError(f"unterminated string at column {start} in {expr!r}")


def _closing(expr: str, start: int, opening: str, closing: str) -> int:
    """Index after the bracket that closes the one at ``start`` (strings inside skipped)."""
    depth = 0
    pos = start
    while pos < len(expr):
        char = expr[pos]
        if char in "\"'`":
            pos = _string_end(expr, pos)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return pos + 1
        pos += 1
    raise PromQLTokenError(f"unclosed {opening!r} at column {start} in {expr!r}")


# --- rules and dashboard ---------------------------------------------------------------------


def load_rules(path: Path = RULES_PATH) -> list[dict[str, Any]]:
    """Every rule of every group, in file order."""
    document = yaml.safe_load(path.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def alert_rules(path: Path = RULES_PATH) -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in load_rules(path) if "alert" in rule}


def recording_rule_names(path: Path = RULES_PATH) -> set[str]:
    return {rule["record"] for rule in load_rules(path) if "record" in rule}


def load_dashboard(path: Path = DASHBOARD_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


def dashboard_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """All panels, including those nested in collapsed rows; rows themselves excluded."""
    panels = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            panels.extend(panel.get("panels", []))
        else:
            panels.append(panel)
    return panels


def dashboard_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query target of every panel."""
    return [
        (panel.get("title", "?"), target.get("expr", ""))
        for panel in dashboard_panels(dashboard)
        for target in panel.get("targets", [])
    ]


def substitute_grafana_variables(expr: str, values: dict[str, str] | None = None) -> str:
    """Replace Grafana variables so the expression can be sent to Prometheus as it is.

    Defaults: $__rate_interval/$__interval/$__range -> 1m; other variables -> ".*" (they are
    only used inside regex matchers in our dashboard).
    """
    defaults = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}
    chosen = {**defaults, **(values or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return chosen.get(name, ".*")

    return re.sub(r"\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)", replace, expr)


def metrics_named_by_rules_and_dashboard() -> dict[str, list[str]]:
    """metric name -> the rules and panels that use it."""
    users: dict[str, list[str]] = {}
    for rule in load_rules():
        for name in promql_metric_names(rule["expr"]):
            users.setdefault(name, []).append(f"rule {rule.get('alert') or rule.get('record')}")
    for title, expr in dashboard_queries(load_dashboard()):
        for name in promql_metric_names(expr):
            users.setdefault(name, []).append(f"panel {title!r}")
    return users


def _http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


class PrometheusAPI:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def get(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        body = json.loads(_http_get(f"{self.base_url}{path}{query}"))
        if body.get("status") != "success":
            raise ValueError(f"{path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/alerts")["alerts"]

    def alert(self, name: str, node: str) -> dict[str, Any] | None:
        for alert in self.alerts():
            labels = alert["labels"]
            if labels["alertname"] == name and labels.get("node") == node:
                return alert
        return None


