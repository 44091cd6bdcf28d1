"""Pure parts of the service: options, notices, subscription bodies, email messages."""

from __future__ import annotations

import warnings

import pytest

from analytics.rules.model import parse_rule
from analytics.rules.service.app import create_app
from analytics.rules.service.config import Config, ConfigError, Secret, parse
from analytics.rules.service.errors import BadRequest
from analytics.rules.service.mailer import build_message
from analytics.rules.service.notices import parse_notice
from analytics.rules.service.subscriptions import (
    subscription_body,
    subscription_path,
    trigger_attrs,
)
from ngsi.server.guards import Incoming, Verdict, admit, reject
from ngsi.server.reply import json_reply

POST = {"type": "post", "parameters": {"url": "http://example.com/"}}


def test_options_from_flags_then_perseo_variables() -> None:
    config = parse(["-port", "9191", "-brokerURL", "http://broker:1026"],
                   {"PERSEO_SMTP_HOST": "mail", "PERSEO_SMTP_PORT": "2525", "WAZIUP_RULES_SMTP_PASSWORD": "pw"})
    assert (config.port, config.broker_url, config.smtp_host, config.smtp_port) == (9191, "http://broker:1026",
                                                                                    "mail", 2525)
    assert config.smtp_password.value == "pw" and "pw" not in repr(config)
    assert parse([], {"PERSEO_ORION_URL": "http://orion:1026"}).broker_url == "http://orion:1026"
    assert parse([], {}).store_url.endswith("/data/rules.db")


def test_the_smtp_password_is_not_an_option() -> None:
    with pytest.raises(ConfigError):
        parse(["-smtpPassword", "pw"], {})


@pytest.mark.parametrize("argv", [["-port", "0"], ["-dbURI", "mongodb://x"], ["-brokerURL", "nope"],
                                  ["-smtpStartTLS", "-smtpTLS"], ["-allowedHosts", "10.0.0.0/99"]])
def test_bad_options_stop_start_up(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse(argv, {})


def test_the_notify_url_follows_the_port() -> None:
    assert Config(port=9999).notices_url == "http://127.0.0.1:9999/notices"
    assert Config(notify_url="http://rules:9090/notices").notices_url == "http://rules:9090/notices"
    assert repr(Secret("x")) == "Secret('**********')"


def test_a_notice_names_each_entity_path_and_deletions() -> None:
    body = (b'{"subscriptionId": "s1", "data": [{"id": "a", "type": "T", "x": {"value": 1}, '
            b'"alterationType": {"type": "Text", "value": "entityDelete"}}, {"id": "b", "type": "T"}]}')
    notice = parse_notice(body, "/p1, /p2")
    assert notice.subscription == "s1"
    assert [(c.service_path, c.entity["id"], c.deleted) for c in notice.changes] == [("/p1", "a", True),
                                                                                      ("/p2", "b", False)]
    assert "alterationType" not in notice.changes[0].entity
    with pytest.raises(BadRequest, match="2 paths for 1"):
        parse_notice(b'{"data": [{"id": "a", "type": "T"}]}', "/a,/b")
    with pytest.raises(BadRequest, match="not #"):
        parse_notice(b'{"data": []}', "/a/#")


def test_a_subscription_asks_for_the_attributes_the_rule_reads() -> None:
    hot = parse_rule({"name": "hot", "condition": {"type": "Room", "q": "temperature>40;humidity<3"}, "action": POST})
    assert trigger_attrs(hot) == ["humidity", "temperature"]
    assert trigger_attrs(parse_rule({"name": "any", "condition": {"type": "Room"}, "action": POST})) is None
    silent = parse_rule({"name": "s", "condition": {"nosignal": {"attribute": "t", "reportInterval": 5}},
                         "action": POST})
    assert trigger_attrs(silent) == ["t"]
    builtin = parse_rule({"name": "b", "condition": {"q": "dateModified>2020-01-01"}, "action": POST})
    assert trigger_attrs(builtin) is None
    body = subscription_body(hot, "http://rules/notices", active=False)
    assert body["status"] == "inactive" and body["notification"]["attrs"] == ["*", "alterationType"]
    assert body["subject"]["entities"] == [{"idPattern": ".*", "type": "Room"}]
    one = parse_rule({"name": "one", "condition": {"id": "Room1", "servicePath": "/farm/#"}, "action": POST})
    assert subscription_body(one, "u")["subject"]["entities"] == [{"id": "Room1"}]
    assert subscription_path(one) == "/farm/#" and subscription_path(hot) == "/#"


def test_an_email_message() -> None:
    message = build_message({"to": ["a@x", "b@x"], "from": None, "subject": "s", "body": "hello"}, "rules@x")
    assert (message["From"], message["To"], message["Subject"]) == ("rules@x", "a@x, b@x", "s")
    assert message.get_content().strip() == "hello"


async def _members_only(incoming: Incoming) -> Verdict:
    if incoming.headers.get("x-member") != "yes":
        return reject(json_reply({"error": "members only", "data": None}, 403))
    return admit()


def test_guards_run_before_the_routes() -> None:
    """The request seam: what the orchestrator puts there (the PEP with -auth) sees every request."""
    app = create_app(Config(db_uri="memory://", broker_url="http://127.0.0.1:9"), guards=[_members_only])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

        with TestClient(app) as client:
            assert client.get("/version").status_code == 403
            assert client.post("/notices", json={"data": []}).status_code == 403
            assert client.get("/version", headers={"x-member": "yes"}).status_code == 200


def test_https_and_the_service_account_options() -> None:
    with pytest.raises(ConfigError, match="-https needs -key FILE and -cert FILE"):
        parse(["-https"], {})
    with pytest.raises(ConfigError, match="-authTokenURL needs -authClientId"):
        parse(["-authTokenURL", "http://idm:3005/oauth2/token"], {})
    with pytest.raises(ConfigError, match="-authUser needs the variable WAZIUP_RULES_AUTH_PASSWORD"):
        parse(["-authUser", "waziup-rules"], {})
    secrets = {"WAZIUP_RULES_AUTH_CLIENT_SECRET": "cs", "WAZIUP_RULES_AUTH_PASSWORD": "pw",
               "WAZIUP_RULES_NOTICE_KEY": "nk"}
    config = parse(["-authTokenURL", "http://idm:3005/oauth2/token", "-authClientId", "app", "-authUser", "rules",
                    "-brokerCa", "ca.pem"], secrets)
    assert (config.auth_client_secret.value, config.auth_password.value, config.notice_key.value) == ("cs", "pw", "nk")
    assert config.broker_ca == "ca.pem" and not any(v in repr(config) for v in ("'cs'", "'pw'", "'nk'"))
    for secret in ("-authClientSecret", "-authPassword", "-noticeKey"):  # the environment only
        with pytest.raises(ConfigError):
            parse([secret, "x"], {})
    assert Config(port=9999, https=True).notices_url == "https://127.0.0.1:9999/notices"


def test_a_signed_subscription_names_its_tenants_signature() -> None:
    from analytics.rules.service.subscriptions import (
        NOTICE_HEADER,
        Subscriber,
        notice_signature,
    )

    rule = parse_rule({"name": "hot", "condition": {"type": "Room", "q": "t>40"}, "action": POST})
    plain = subscription_body(rule, "http://r/notices")
    assert plain["notification"]["http"] == {"url": "http://r/notices"}
    signed = subscription_body(rule, "http://r/notices", signature="abc")
    assert signed["notification"]["httpCustom"] == {"url": "http://r/notices", "headers": {NOTICE_HEADER: "abc"}}
    assert signed["notification"]["attrs"] == plain["notification"]["attrs"] and "http" not in signed["notification"]
    subscriber = Subscriber(None, "http://r/notices", "key")  # type: ignore[arg-type]
    made = subscription_body(rule, "http://r/notices", signature=notice_signature("key", "coop"))
    assert subscriber.current("coop", made) and not subscriber.current("town", made)
    assert not subscriber.current("coop", plain) and Subscriber(None, "u").current("coop", plain)  # type: ignore[arg-type]
