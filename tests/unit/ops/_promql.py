"""What the rules and the dashboard query: every PromQL expression, and the series each one selects.

Expressions are parsed with ``promql-parser`` (a port of Prometheus' own parser) to find their vector
selectors; whether an expression parses is also checked by promtool itself (``promtool check rules``).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import promql_parser

from tests.unit.ops._deploy import PROMETHEUS_DIR, REPO, load_yaml

ALERTS_FILE = PROMETHEUS_DIR / "alerts.yml"
GRAFANA_DIR = REPO / "ops" / "grafana"
DASHBOARDS = sorted((GRAFANA_DIR / "dashboards").glob("*.json"))
# Grafana's built-in variables, as a Prometheus server would see them once Grafana has filled them in.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h"}


@dataclasses.dataclass(frozen=True, slots=True)
class Selector:
    """A vector selector: the metric name and the jobs its ``job`` matchers allow."""

    name: str
    job_matchers: tuple[tuple[str, str], ...]  # (operator, value): Equal, NotEqual, Re, NotRe

    def allows_job(self, job: str) -> bool:
        for operator, value in self.job_matchers:
            matched = re.fullmatch(value, job) is not None if operator.endswith("Re") else value == job
            if matched == operator.startswith("Not"):
                return False
        return True


def selectors(expression: str) -> list[Selector]:
    """The vector selectors of ``expression`` (``ValueError`` when it does not parse)."""
    found: list[Selector] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            jobs = tuple(
                (str(matcher.op).rsplit(".", 1)[-1], matcher.value)
                for matcher in node.matchers.matchers
                if matcher.name == "job"
            )
            found.append(Selector(node.name or "", jobs))

    promql_parser.walk(promql_parser.parse(expression), visit)
    return found


def alert_expressions() -> dict[str, str]:
    """alert name -> its expression."""
    return {rule["alert"]: rule["expr"] for group in load_yaml(ALERTS_FILE)["groups"] for rule in group["rules"]}


def dashboard_expressions() -> dict[str, str]:
    """``<dashboard file>/<panel title>/<refId>`` -> the query, Grafana's variables filled in."""
    queries: dict[str, str] = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            for target in panel.get("targets", []):
                expression = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expression = expression.replace(variable, value)
                queries[f"{path.name}/{panel['title']}/{target['refId']}"] = expression
    return queries


def as_rule_file(expressions: dict[str, str], path: Path) -> Path:
    """The expressions as recording rules of one group, for ``promtool check rules`` (it parses each)."""
    rules = [{"record": f"check:query_{n}", "expr": expression} for n, expression in enumerate(expressions.values())]
    path.write_text(json.dumps({"groups": [{"name": "queries", "rules": rules}]}), encoding="utf-8")
    return path
