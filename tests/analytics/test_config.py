"""The history service's options (``config.py``), the ``waziup history`` command, and
retention rules (``retention.py``)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from analytics.history.config import Config, ConfigError, parse
from analytics.history.retention import ANY, Policy, Rule, parse_rule
from tests.conftest import ROOT


def test_defaults_and_options() -> None:
    config = parse([], {})
    assert (config.port, config.default_limit, config.retention_days) == (8668, 10000, 0)
    assert config.store_url.startswith("sqlite:///") and config.store_url.endswith("/data/history.db")
    config = parse(["-port", "9000", "-dbURI", "postgresql://u@h/db", "-retention", "a/Room=3", "-retention=*/Car=1",
                    "-logLevel", "debug"], {"DEFAULT_LIMIT": "50"})
    assert (config.port, config.store_url, config.default_limit) == (9000, "postgresql://u@h/db", 50)
    assert config.policy.days("a", "Room") == 3 and config.policy.days("b", "Car") == 1


def test_quantumleap_variables_name_a_postgresql_database() -> None:
    config = parse([], {"QL_DEFAULT_DB": "timescale", "POSTGRES_HOST": "db", "POSTGRES_DB_USER": "ql",
                        "POSTGRES_DB_PASS": "p@ss", "POSTGRES_DB_NAME": "hist"})
    assert config.store_url == "postgresql://ql:p%40ss@db:5432/hist"
    assert parse(["-dbURI", "sqlite:///x.db"], {"QL_DEFAULT_DB": "timescale"}).store_url == "sqlite:///x.db"


@pytest.mark.parametrize("argv", [["-port", "0"], ["-dbURI", "mysql://x"], ["-retention", "a/b"], ["-logLevel", "loud"],
                                  ["-nothing"], ["-retention", "a=9999999"]])
def test_bad_options(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse(argv, {})


def test_the_command() -> None:
    shown = subprocess.run([sys.executable, "-m", "orchestrator.cli", "history", "--help"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60, check=False)
    assert shown.returncode == 0 and "-retentionDays" in shown.stdout and "8668" in shown.stdout
    usage = subprocess.run([sys.executable, "-m", "orchestrator.cli"], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, check=False)
    assert "waziup history" in usage.stdout
    refused = subprocess.run([sys.executable, "-m", "analytics.history", "-port", "x"], cwd=ROOT, capture_output=True,
                             text=True, timeout=60, check=False)
    assert refused.returncode == 1 and "waziup history: option -port" in refused.stderr


def test_retention_rules_and_their_precedence() -> None:
    assert parse_rule("City/Room=30") == Rule("city", "Room", 30)
    assert parse_rule("city=7") == Rule("city", ANY, 7)
    assert parse_rule("*/Room=1") == Rule(ANY, "Room", 1)
    assert parse_rule("/Room=2") == Rule("", "Room", 2)
    policy = Policy.of(10, ["city/Room=30", "city=7", "*/Room=1", "/Room=2", "keep=0"])
    assert policy.days("city", "Room") == 30
    assert policy.days("city", "Car") == 7
    assert policy.days("town", "Room") == 1
    assert policy.days("", "Room") == 2
    assert policy.days("town", "Car") == 10
    assert policy.days("keep", "Car") == 0 and policy.active
    assert not Policy.of(0, ["a=0"]).active
    for bad in ("city", "city/Room=x", "=", "a=-1"):
        with pytest.raises(ValueError):
            parse_rule(bad)
    assert Config().policy == Policy(0, ())


def test_hourly_roll_ups_must_outlive_raw_values() -> None:
    assert parse(["-hourlyRetentionDays", "30", "-retentionDays", "30"], {}).policy == Policy(30, (), 30)
    assert parse([], {"WAZIUP_HISTORY_HOURLY_RETENTION_DAYS": "7"}).hourly_retention_days == 7
    assert parse(["-hourlyRetentionDays", "7"], {}).policy.active  # raw values kept for ever: allowed
    assert parse(["-retentionDays", "9"], {}).policy.problem() is None  # hourly rows kept for ever
    with pytest.raises(ConfigError, match=r"^-hourlyRetentionDays 10 is shorter than the raw retention of "
                                          r"-retentionDays \(30 days\)"):
        parse(["-hourlyRetentionDays", "10", "-retentionDays", "30"], {})
    with pytest.raises(ConfigError, match=r"raw retention of -retention city/Room \(90 days\)"):
        parse(["-hourlyRetentionDays", "60", "-retention", "city/Room=90", "-retention", "*=70", "-retention", "a=0"],
              {})
    refused = subprocess.run([sys.executable, "-m", "analytics.history", "-retentionDays", "5"], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=False,
                             env={**os.environ, "WAZIUP_HISTORY_HOURLY_RETENTION_DAYS": "2"})
    assert refused.returncode == 1
    assert refused.stderr.strip() == ("waziup history: -hourlyRetentionDays 2 is shorter than the raw retention of "
                                      "-retentionDays (5 days): hourly roll-ups must be kept at least as long as "
                                      "raw values")
