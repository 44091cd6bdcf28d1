"""ngsi.settings: the option tables of every command (broker, IoT agent, ``waziup run``)."""

from __future__ import annotations

import dataclasses
import re
import string
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analytics.dashboard import config as dashboard_config
from analytics.history import config as history_config
from analytics.rules.service import config as rules_config
from broker import config as broker_config
from iot_agent import config as agent_config
from ngsi.settings import (
    FLAG,
    PORT,
    Choice,
    HelpRequested,
    Ignored,
    Int,
    Option,
    Prefix,
    Repeated,
    SettingsError,
    Table,
    Text,
    command_line,
    data_dir_option,
    destination_rules,
    field_of,
    http_url,
    listen_option,
    log_level_option,
    module_attribute,
    option,
)
from orchestrator import cli
from orchestrator import run_all
from orchestrator.waziup_api import config as api_config


@dataclasses.dataclass(frozen=True)
class Sample:
    port: int = 1026
    host: str = "0.0.0.0"
    verbose: bool = False
    colour: str = "red"
    tags: tuple[str, ...] = ()
    ignored: tuple[str, ...] = ()
    rest: list[str] = dataclasses.field(default_factory=list)


SAMPLE = Table(
    Sample,
    option("-port", field="port", type=PORT, env="SAMPLE_PORT", help="the port"),
    option("-localIp", "--host", field="host", env=("SAMPLE_HOST", "OLD_HOST"), help="the address"),
    option("-verbose", field="verbose", type=FLAG, env="SAMPLE_VERBOSE", help="more words"),
    option("--colour", field="colour", type=Choice("red", "green"), help="a colour"),
    option("-tag", field="tags", type=Repeated(), env="SAMPLE_TAGS", help="a tag"),
    ignored=Ignored("ignored", valued=("logDir",), flags=("fg",)),
    rest="rest",
)


def parse(*argv: str, **environ: str) -> dict[str, Any]:
    return SAMPLE.parse(list(argv), environ)


def error(*argv: str, **environ: str) -> str:
    with pytest.raises(SettingsError) as caught:
        parse(*argv, **environ)
    return str(caught.value)


# -- the grammar -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv", [["-port", "1"], ["--port", "1"], ["-port=1"], ["--port=1"], ["-port", "7", "--port=1"]]
)
def test_the_four_spellings_of_a_valued_option_and_the_last_wins(argv: list[str]) -> None:
    assert parse(*argv) == {"port": 1}


def test_aliases_flags_choices_repeated_options_and_the_rest() -> None:
    assert parse("-host", "h1") == parse("--localIp=h1") == {"host": "h1"}
    assert parse("-verbose") == parse("--verbose=YES") == parse("-verbose=on") == {"verbose": True}
    assert parse("-verbose=false") == parse("-verbose=") == parse("-verbose=0") == {"verbose": False}
    assert parse("--colour", "green") == {"colour": "green"}
    assert parse("-tag", "a", "-tag=b,c") == {"tags": ("a", "b,c")}
    assert parse("-host", "-port") == {"host": "-port"}  # a valued option takes the next word, whatever it is
    assert parse("-port", "2", "--", "-port", "x") == {"port": 2, "rest": ["-port", "x"]}
    assert Sample(**parse("-tag", "a")) == Sample(tags=("a",))


def test_ignored_options_are_recorded_and_change_nothing() -> None:
    assert parse("-fg", "-logDir", "/tmp", "-port", "2", "-logDir=/x", "-logDir", "-fg") == {
        "port": 2,
        "ignored": ("fg", "logDir", "logDir", "logDir", "fg"),
    }


def test_environment_then_command_line() -> None:
    env = {"SAMPLE_PORT": "2000", "OLD_HOST": "old", "SAMPLE_VERBOSE": "TRUE", "SAMPLE_TAGS": " a, ,b ,"}
    assert parse(**env) == {"port": 2000, "host": "old", "verbose": True, "tags": ("a", "b")}
    assert parse(**env, SAMPLE_HOST="new")["host"] == "new"  # the first variable of the row wins
    assert parse("-port", "1", "-tag", "z", **env) == {"port": 1, "host": "old", "verbose": True, "tags": ("z",)}
    # a bad variable the command line overrides is not read
    assert parse("-port", "1", SAMPLE_PORT="x") == {"port": 1}


@pytest.mark.parametrize(
    "argv,environ,message",
    [
        (["-port", "x"], {}, "option -port: 'x' is not an integer"),
        (["--port=70000"], {}, "option --port: '70000' is not between 1 and 65535"),
        (["-port"], {}, "option -port needs a value"),
        (["-nope"], {}, "unknown option '-nope' (--help lists the options)"),
        (["8080"], {}, "unexpected argument '8080'"),
        (["--"], {}, None),  # no error: an empty rest
        (["-verbose", "true"], {}, "unexpected argument 'true'"),
        (["-verbose=maybe"], {}, "option -verbose: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)"),
        (["--colour", "blue"], {}, "option --colour: 'blue' is not one of red, green"),
        (["-tag", ""], {}, "option -tag: an empty value"),
        ([], {"SAMPLE_PORT": "0"}, "environment variable SAMPLE_PORT: '0' is not between 1 and 65535"),
        ([], {"SAMPLE_VERBOSE": "maybe"}, "environment variable SAMPLE_VERBOSE: 'maybe' is not a boolean"),
    ],
)
def test_errors_name_the_option_and_the_value(argv: list[str], environ: dict[str, str], message: str | None) -> None:
    if message is None:
        assert SAMPLE.parse(argv, environ) == {"rest": []}
        return
    with pytest.raises(SettingsError) as caught:
        SAMPLE.parse(argv, environ)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("raw", ["٣", "1_000", "²", "１２", "1.0", "0x10", "", " ", "+", "1 2", "1e3", "\u00a012"])
def test_integers_are_ascii_digits_only(raw: str) -> None:
    with pytest.raises(ValueError, match="is not an integer"):
        Int(-(10**9), 10**9).convert(raw)


def test_integers_signs_blanks_zeros_and_bounds() -> None:
    assert [Int(-5, 5).convert(raw) for raw in ("-5", "+5", " 3\r\n", "\t0004", "-0")] == [-5, 5, 3, 4, 0]
    for raw in ("6", "-6", "9" * 5000):
        with pytest.raises(ValueError, match="is not between -5 and 5"):
            Int(-5, 5).convert(raw)


@given(st.text())
def test_an_integer_accepted_is_written_in_ascii(raw: str) -> None:
    try:
        value = Int(-(2**63), 2**63).convert(raw)
    except ValueError:
        return
    assert re.fullmatch(r"[+-]?[0-9]+", raw.strip(" \t\r\n")) and value == int(raw)


@pytest.mark.parametrize("argv", [["-h"], ["-help"], ["--help"], ["-port", "1", "--help", "-nope"]])
def test_help_is_asked_for(argv: list[str]) -> None:
    with pytest.raises(HelpRequested):
        SAMPLE.parse(argv, {"SAMPLE_PORT": "x"})
    assert SAMPLE.parse(["-localIp", "--help"], {}) == {"host": "--help"}  # a value, not a request


def test_a_table_refuses_what_it_could_not_parse() -> None:
    with pytest.raises(TypeError, match="no field"):
        Table(Sample, option("-x", field="nope"))
    with pytest.raises(TypeError, match="declared twice"):
        Table(Sample, option("-port", field="port"), option("--port", field="host"))
    with pytest.raises(TypeError, match="declared twice"):
        Table(Sample, option("-h", field="host"))
    with pytest.raises(TypeError, match="two rows"):
        Table(Sample, option("-a", field="host"), option("-b", field="host"))
    with pytest.raises(TypeError, match="expected -name"):
        Table(Sample, option("port", field="port"))


def test_module_attribute() -> None:
    module_attribute("ngsi.server.guards:factory")
    for bad in ("x", "x:", ":f", "a b:f", "a.:f", "a:f.g", "1a:f"):
        with pytest.raises(ValueError, match="is not module:factory"):
            module_attribute(bad)


def test_a_row_names_its_field_after_its_option_and_its_variable_after_a_prefix() -> None:
    names = ("--north-host", "-northHost", "-mqttURI", "-port", "--cb-ca", "-inReqPayloadMaxSize")
    assert [field_of(name) for name in names] == [
        "north_host", "north_host", "mqtt_uri", "port", "cb_ca", "in_req_payload_max_size",
    ]
    assert option("-corsMaxAge").field == "cors_max_age"
    row = option("--cb-flow-control", type=FLAG, env=Prefix("IOTA_"))
    assert (row.field, row.env) == ("cb_flow_control", ("IOTA_CB_FLOW_CONTROL",))
    row = option("--key", field="https_key", env=Prefix("IOTA_"))
    assert (row.field, row.env) == ("https_key", ("IOTA_HTTPS_KEY",))
    assert option("-localIp", "-host", field="host", env="A").env == ("A",)
    assert option("-x", env=("A", "B")).env == ("A", "B")


def test_rows_every_service_declares_alike() -> None:
    assert listen_option("-localIp", "-host", env="L") == option(
        "-localIp", "-host", field="host", type=Text("ADDRESS"), env="L", help="address to listen on"
    )
    assert data_dir_option("--data-dir", help="where") == option(
        "--data-dir", type=Text("DIR"), env="WAZIUP_DATA_DIR", help="where"
    )
    assert log_level_option("-logLevel", env="V") == option("-logLevel", type=Text("LEVEL"), env="V", help="log level")


def test_checks_of_urls_and_destination_rules() -> None:
    http_url("")
    http_url("https://idm:3005")
    with pytest.raises(ValueError, match="'ftp://x' is not an http\\(s\\) URL"):
        http_url("ftp://x")
    destination_rules("10.0.0.0/8,host:8080")
    with pytest.raises(ValueError, match="'host:99999' has an invalid port"):
        destination_rules("host:99999")


def test_agent_variables_are_iotagent_node_lib_names() -> None:
    """IOTA_ and the field in capitals (the Prefix), but for three."""
    odd = {row.field: row.env for row in agent_config.OPTIONS.options if row.env != ("IOTA_" + row.field.upper(),)}
    assert odd == {
        "polling_daemon_frequency": ("IOTA_POLLING_DAEMON_FREQ",),
        "data_dir": ("WAZIUP_DATA_DIR",),
        "guards": ("WAZIUP_GUARDS",),
    }


def test_help_lists_every_option_with_its_variable_and_default() -> None:
    text = SAMPLE.help("sample")
    assert text.splitlines()[0] == "usage: sample [options]"
    assert "  -port PORT" in text and "the port [env SAMPLE_PORT; default 1026]" in text
    assert "-localIp, --host VALUE" in text and "[env SAMPLE_HOST or OLD_HOST; default 0.0.0.0]" in text
    assert "[env SAMPLE_VERBOSE; default off]" in text and "--colour {red|green}" in text
    assert "[env SAMPLE_TAGS, ','-separated; default none]" in text and "-logDir, -fg" in text


def test_command_line_exits() -> None:
    shown: list[str] = []
    build = lambda argv: SAMPLE.build(argv, {})  # noqa: E731
    assert command_line(SAMPLE, build, ["-port", "2"], prog="sample", show=shown.append) == Sample(port=2)
    with pytest.raises(SystemExit) as caught:
        command_line(SAMPLE, build, ["--help"], prog="sample", show=shown.append)
    assert caught.value.code == 0 and shown == [SAMPLE.help("sample")]
    with pytest.raises(SystemExit) as caught:
        command_line(SAMPLE, build, ["-port", "x"], prog="sample", show=shown.append)
    assert caught.value.code == "sample: option -port: 'x' is not an integer"


# -- the three tables --------------------------------------------------------------------------

TABLES = {"broker": broker_config.OPTIONS, "iot-agent": agent_config.OPTIONS, "run": run_all.OPTIONS}
PARSERS = {
    "broker": lambda argv, env: broker_config.parse(argv, env),
    "iot-agent": lambda argv, env: agent_config.parse(argv, env),
    "run": lambda argv, env: run_all.parse(argv),
}


def test_broker_options_as_before() -> None:
    config = broker_config.parse(
        ["-localIp", "127.0.0.1", "--port=2000", "-multiservice", "-noCache", "-subCacheIval", "5", "-corsOrigin", "*"],
        {"ORION_DB_URI": "memory://", "WAZIUP_WORKERS": "2", "ORION_INSECURE_NOTIF": "1"},
    )
    assert (config.host, config.port, config.multiservice, config.cors_origin) == ("127.0.0.1", 2000, True, "*")
    assert (config.db_uri, config.workers, config.insecure_notif) == ("memory://", 2, True)
    assert config.ignored == ("noCache", "subCacheIval")
    assert broker_config.parse(["-host", "::1"], {}).host == "::1"
    assert broker_config.parse([], {}) == broker_config.Config()


def test_guards_of_the_broker_and_the_agent() -> None:
    env = {"WAZIUP_GUARDS": "a.b:make, c:d"}
    assert broker_config.parse([], env).guards == agent_config.parse([], env).guards == ("a.b:make", "c:d")
    assert broker_config.parse(["-guard", "x:y", "--guard=z:w"], env).guards == ("x:y", "z:w")
    assert agent_config.parse(["--guard", "x:y", "-guard=z:w"], env).guards == ("x:y", "z:w")
    with pytest.raises(broker_config.ConfigError, match="option -guard: 'nope' is not module:factory"):
        broker_config.parse(["-guard", "nope"], {})
    with pytest.raises(agent_config.ConfigError, match="environment variable WAZIUP_GUARDS: 'x' is not module:factory"):
        agent_config.parse([], {"WAZIUP_GUARDS": "x"})


def test_agent_mqtt_uri() -> None:
    config = agent_config.parse(["-mqttURI", "mqtt://u:p@broker:1884"], {})
    assert (config.mqtt_host, config.mqtt_port) == ("broker", 1884)
    assert (config.mqtt_username, config.mqtt_password) == ("u", "p")
    assert agent_config.parse([], {"IOTA_MQTT_URI": ""}).mqtt_host == ""
    with pytest.raises(agent_config.ConfigError, match="option --mqtt-uri: 'http://x' is not mqtt://host"):
        agent_config.parse(["--mqtt-uri", "http://x"], {})


def test_run_options() -> None:
    options = run_all.parse(["-host", "127.0.0.1", "-port=2000", "--", "-corsOrigin", "__ALL"])
    assert options == run_all.Options(host="127.0.0.1", port=2000, broker_args=["-corsOrigin", "__ALL"])
    with pytest.raises(SettingsError, match="option -northPort: 'x' is not an integer"):
        run_all.parse(["-northPort", "x"])


def test_run_host_reaches_every_service(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    started: list[list[str]] = []
    probed: list[str] = []

    class Child:
        returncode = 0

        def __init__(self, argv: list[str], **popen: Any) -> None:
            started.append(argv)

        def poll(self) -> int:
            return 0

        def wait(self, timeout: float | None = None) -> int:
            return 0

    monkeypatch.setattr(run_all.subprocess, "Popen", Child)
    monkeypatch.setattr(run_all.signal, "signal", lambda *args: None)
    monkeypatch.setattr(run_all, "_wait_mqtt", lambda host, port, proc, what: probed.append(f"{host}:{port}"))
    monkeypatch.setattr(run_all, "_wait_http", lambda url, proc, what: probed.append(url))
    api_env = {"WAZIUP_API_CLIENT_ID": "app", "WAZIUP_API_CLIENT_SECRET": "s", "WAZIUP_API_ADMIN_USER": "admin@localhost",
               "WAZIUP_API_ADMIN_PASSWORD": "p", "WAZIUP_API_AUTH_PASSWORD": "q"}
    monkeypatch.setattr(run_all.platform_auth, "setup", lambda *args: run_all.platform_auth.PlatformAuth(
        {}, {}, api_env=api_env))
    assert run_all.run(run_all.parse(["-host", "10.1.2.3", "-data", str(tmp_path), "-mqttBroker", "amqtt"])) == 1
    mqtt, idm, history, broker, rules, agent, dashboard, api, orch = started
    from orchestrator.appserver import config as orch_config

    orch_options = orch_config.parse(orch[orch.index("orchestrator") + 1 :], {})
    assert (orch_options.host, orch_options.port, orch_options.broker_url) == ("10.1.2.3", 8080, "http://10.1.2.3:1026")
    assert (orch_options.iota_url, orch_options.history_url) == ("http://10.1.2.3:4041", "http://10.1.2.3:8668")
    assert orch_options.ingress_base == "http://10.1.2.3:8080" and "10.1.2.3:8080/ingress" in broker
    assert orch_options.discovery_tenants == ("'',waziup",)  # the default tenant and the WAZIUP API's
    assert idm[idm.index("idm") + 1 :][:4] == ["-host", "10.1.2.3", "-port", "3005"]  # the WAZIUP API's accounts
    api_options = api_config.parse(api[api.index("api") + 1 :], api_env)
    assert (api_options.host, api_options.port, api_options.mqtt_port) == ("10.1.2.3", 8800, 3883)
    assert (api_options.broker_url, api_options.history_url) == ("http://10.1.2.3:1026", "http://10.1.2.3:8668")
    assert (api_options.idm_url, api_options.service, api_options.auth_user) == ("http://10.1.2.3:3005", "waziup", "")
    assert "waziup" in broker[broker.index("-feedSkipTenants") + 1]  # the API feeds the history its datapoints itself
    dashboard_options = dashboard_config.parse(dashboard[dashboard.index("dashboard") + 1 :], {})
    assert (dashboard_options.host, dashboard_options.port) == ("10.1.2.3", 3000)
    assert dashboard_options.broker_url == "http://10.1.2.3:1026"
    assert dashboard_options.notify_base == "http://10.1.2.3:3000"
    assert "10.1.2.3:3000/notify" in broker  # the broker may feed the dashboard's live feed
    assert mqtt[-3:] == ["mqtt-broker", "10.1.2.3", "1883"]
    rules_options = rules_config.parse(rules[rules.index("rules") + 1 :], {})
    assert (rules_options.host, rules_options.port) == ("10.1.2.3", 9090)
    assert rules_options.broker_url == "http://10.1.2.3:1026"
    assert rules_options.notify_url == "http://10.1.2.3:9090/notices"
    assert "10.1.2.3:9090/notices" in broker  # the broker may notify the rules service
    assert history_config.parse(history[history.index("history") + 1 :], {}).host == "10.1.2.3"
    broker_options = broker_config.parse(broker[broker.index("broker") + 1 :], {})
    assert broker_options.host == "10.1.2.3"
    assert broker_options.feed_url == "http://10.1.2.3:8668/v2/notify"  # the change feed goes to the history
    agent_options = agent_config.parse(agent[agent.index("iot-agent") + 1 :], {})
    assert (agent_options.north_host, agent_options.http_host, agent_options.mqtt_host) == ("10.1.2.3",) * 3
    assert agent_options.broker_url == "http://10.1.2.3:1026"
    assert probed == [
        "10.1.2.3:1883", "http://10.1.2.3:3005/.well-known/openid-configuration", "http://10.1.2.3:8668/version",
        "http://10.1.2.3:1026/version", "http://10.1.2.3:9090/version", "http://10.1.2.3:4041/iot/about",
        "http://10.1.2.3:3000/api/config", "http://10.1.2.3:8800/api/v2/ontologies/units",
        "http://10.1.2.3:8080/version",
    ]
    started.clear()
    run_all.run(run_all.parse(["-mqttBroker", "amqtt", "-historyPort", "0", "-rulesPort", "0", "-apiPort", "0", "-appsPort", "0"], {}))
    assert broker_config.parse(started[1][started[1].index("broker") + 1 :], {}).host == "127.0.0.1"  # no -auth
    assert broker_config.parse(started[1][started[1].index("broker") + 1 :], {}).feed_url == ""  # no history
    assert agent_config.parse(started[2][started[2].index("iot-agent") + 1 :], {}).broker_url == "http://127.0.0.1:1026"
    assert run_all.reachable("::") == "::1"


@pytest.mark.parametrize("command", sorted(TABLES))
def test_waziup_command_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([command, "--help"])
    assert caught.value.code == 0
    text = capsys.readouterr().out
    assert text.startswith(f"usage: waziup {command} ")
    for row in TABLES[command].options:
        assert all(name in text for name in row.names + row.env), row


@pytest.mark.parametrize("command", sorted(TABLES))
def test_waziup_command_error(command: str) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.main([command, "--no-such-option"])
    assert caught.value.code == f"waziup {command}: unknown option '--no-such-option' (--help lists the options)"


# -- properties --------------------------------------------------------------------------------

_NAME = st.text(string.ascii_letters + "_", min_size=1, max_size=6)
_EXAMPLES: dict[str, st.SearchStrategy[Any]] = {  # values of the rows with a check
    "notification_mode": st.sampled_from(["transient", "permanent", "threadpool:5:2", ""]),
    "mqtt_uri": st.sampled_from(["", "mqtt://broker", "mqtt://u:p@h:1884", "tcp://10.0.0.1:1"]),
    "guards": st.lists(st.builds(lambda m, f: f"{m}.x:{f}", _NAME, _NAME), min_size=1, max_size=3).map(tuple),
    "notif_allowed_hosts": st.lists(
        st.sampled_from(["127.0.0.1", "localhost:4041", "10.0.0.0/8", "[::1]:7896/iot", "mqtt://localhost:1883"]),
        min_size=1, max_size=3,
    ).map(tuple),
    "notif_filter": st.builds(lambda m, f: f"{m}.x:{f}", _NAME, _NAME),
    "feed_url": st.sampled_from(["", "http://127.0.0.1:8668/v2/notify", "https://history.example/v2/notify"]),
    "notif_token_for": st.lists(st.sampled_from(["http://127.0.0.1:9090/notices", "https://rules.example/notices"]),
                                min_size=1, max_size=2).map(tuple),
    "allowed_destinations": st.lists(
        st.sampled_from(["127.0.0.1", "localhost:80", "192.168.0.0/16", "[fd00::1]:8080/cmd"]), min_size=1, max_size=3,
    ).map(tuple),
}


def values_of(row: Option) -> st.SearchStrategy[Any]:
    if row.field in _EXAMPLES:
        return _EXAMPLES[row.field]
    kind = row.type
    if isinstance(kind, Int):
        return st.integers(kind.low, kind.high)
    if kind is FLAG:
        return st.booleans()
    if isinstance(kind, Choice):
        return st.sampled_from(kind.choices)
    if isinstance(kind, Repeated):
        return st.lists(st.text(min_size=1), min_size=1, max_size=3).map(tuple)
    assert isinstance(kind, Text)
    return st.text()


ROWS = [(command, row) for command, table in TABLES.items() for row in table.options]


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_option_round_trips_through_its_rendered_form(data: st.DataObject) -> None:
    command, row = data.draw(st.sampled_from(ROWS))
    value = data.draw(values_of(row))
    bare = data.draw(st.sampled_from(row.names)).lstrip("-")
    name = data.draw(st.sampled_from(["-" + bare, "--" + bare]))
    argv = row.render(value, inline=data.draw(st.booleans()), name=name)
    assert TABLES[command].parse(argv, {}) == {row.field: value}
    if not isinstance(row.type, Repeated):  # and through its variable
        raw = {True: "true", False: "false"}.get(value, str(value)) if isinstance(value, bool) else str(value)
        assert all(TABLES[command].parse([], {variable: raw}) == {row.field: value} for variable in row.env)


_WORDS = sorted(
    {w for table in TABLES.values() for row in table.options for w in row.names}
    | {"-" + n for n in broker_config.IGNORED.valued + broker_config.IGNORED.flags}
    | {"--", "-", "-h", "--help", "-=", "-port=", "-multiservice=no"}
)
_ARG = st.one_of(
    st.sampled_from(_WORDS),
    st.sampled_from(_WORDS).flatmap(lambda w: st.text(max_size=8).map(lambda v: f"{w}={v}")),
    st.integers(-(10**6), 10**6).map(str),
    st.sampled_from(["٣", "1_000", "²", "9" * 5000, "true", "maybe", "mqtt://h:99999", "a:b", "threadpool:1:x"]),
    st.text(max_size=10),
)
_VARIABLES = sorted({v for table in TABLES.values() for row in table.options for v in row.env})


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(sorted(PARSERS)),
    st.lists(_ARG, max_size=8),
    st.dictionaries(st.sampled_from(_VARIABLES), _ARG, max_size=4),
)
def test_any_argv_parses_or_raises_the_parser_error(command: str, argv: list[str], environ: dict[str, str]) -> None:
    try:
        PARSERS[command](argv, environ)
    except SettingsError:
        pass
