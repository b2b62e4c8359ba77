"""Failure handling in the Dagster layer, against real receivers: retries with growing delays, one incident per
failing asset and partition, one alert per channel (a Teams webhook on loopback and an SMTP server), no secret
in any of them, and the incident resolved by the next success."""

import itertools
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from retreasure.connectors.shopify import ShopifySource
from retreasure.lake import Lake
from retreasure.lake.ingest_log import INGEST_LOG
from retreasure.pipeline.assets import retry_policy
from retreasure.pipeline.definitions import build_definitions
from retreasure.pipeline.incidents import INCIDENTS, StepGuard, incidents
from retreasure.pipeline.resources import RetreasureResource
from retreasure.pipeline.schedules import INGEST_JOB, MODELS_JOB
from retreasure.settings import get_settings

SMTP_USER = "alerts@retreasure.test"
SMTP_PASSWORD = "smtp-pass-7f3a9c2e41"
WEBHOOK_SIGNATURE = "sig-5d1e0b7a9c3f"
API_TOKEN = "shpat_4b9e2d7c1a6f8e3d"  # a connector credential that ends up in an error message below


class _Smtp(Controller):
    """aiosmtpd's Controller checks it is up by connecting to the port it was given: with port 0 (any free
    port) it must first learn the port the server got."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.original_content))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD))


@pytest.fixture
def smtp() -> Iterator[tuple[_Inbox, int]]:
    inbox = _Inbox()
    controller = _Smtp(inbox, hostname="127.0.0.1", port=0, authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield inbox, controller.port
    finally:
        controller.stop()


@pytest.fixture
def teams() -> Iterator[tuple[list[dict[str, Any]], str]]:
    posts: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            posts.append({"path": self.path, "type": self.headers["Content-Type"], "json": json.loads(body)})
            self.send_response(202)  # what a Teams Workflows webhook answers
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield posts, f"http://127.0.0.1:{server.server_port}/webhookb2/{WEBHOOK_SIGNATURE}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    smtp: tuple[_Inbox, int],
    teams: tuple[list[dict[str, Any]], str],
) -> Iterator[Lake]:
    """Settings from the environment, as in production: a lake on tmp_path and both alert channels."""
    monkeypatch.chdir(tmp_path)  # no .env of the working tree
    values = {
        "RETREASURE_LAKE_URI": str(tmp_path / "lake"),
        "RETREASURE_LANDING_DIR": str(tmp_path / "landing"),
        "RETREASURE_SHOPIFY__ACCESS_TOKEN": API_TOKEN,
        "RETREASURE_ALERTS__TEAMS_WEBHOOK_URL": teams[1],
        "RETREASURE_ALERTS__SMTP_HOST": "127.0.0.1",
        "RETREASURE_ALERTS__SMTP_PORT": str(smtp[1]),
        "RETREASURE_ALERTS__SMTP_FROM": "retreasure@retreasure.test",
        "RETREASURE_ALERTS__SMTP_TO": json.dumps(["data-oncall@retreasure.test", "ops@retreasure.test"]),
        "RETREASURE_ALERTS__SMTP_STARTTLS": "false",
        "RETREASURE_ALERTS__SMTP_USERNAME": SMTP_USER,
        "RETREASURE_ALERTS__SMTP_PASSWORD": SMTP_PASSWORD,
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield Lake(tmp_path / "lake")
    get_settings.cache_clear()


@pytest.fixture
def step_log() -> Iterator[list[logging.LogRecord]]:
    """The structured records the failure handling logs (whatever handlers the log set-up installed)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("retreasure.pipeline")
    handler, level = Keep(logging.DEBUG), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def _write_model(root: Path, layer: str, name: str, sql: str, contract: str) -> None:
    (root / layer).mkdir(parents=True, exist_ok=True)
    (root / layer / f"{name}.sql").write_text(sql)
    (root / layer / f"{name}.yml").write_text(contract)


def test_a_step_that_fails_twice_is_retried_with_growing_delays_and_succeeds(
    env: Lake, step_log: list[logging.LogRecord], smtp: tuple[_Inbox, int], teams: tuple[list[Any], str]
) -> None:
    attempts: list[float] = []
    base = 0.1
    policy = retry_policy(delay_s=base)
    assert (policy.max_retries, policy.backoff, policy.jitter) == (3, dg.Backoff.EXPONENTIAL, dg.Jitter.PLUS_MINUS)

    @dg.asset(key=["silver", "flaky"], retry_policy=policy)
    def flaky(context: dg.AssetExecutionContext, retreasure: RetreasureResource) -> dg.MaterializeResult:
        with StepGuard(context, retreasure, "silver.flaky") as guard:
            attempts.append(time.monotonic())
            if len(attempts) <= 2:
                raise ConnectionError(f"source unavailable (attempt {len(attempts)})")
        guard.succeeded()
        return dg.MaterializeResult(metadata={"attempts": len(attempts)})

    result = dg.materialize([flaky], resources={"retreasure": RetreasureResource()})

    assert result.success
    assert len(attempts) == 3
    waits = [
        e.event_specific_data.seconds_to_wait for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"
    ]
    # Exponential from the base (1x, then 3x), each moved by up to one base either way: [0, 2b] then [2b, 4b].
    assert len(waits) == 2
    assert 0 <= waits[0] <= 2 * base <= waits[1] <= 4 * base
    assert waits[1] > waits[0]
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert all(gap >= wait for gap, wait in zip(gaps, waits, strict=True))
    failed = [r for r in step_log if r.getMessage() == "step failed"]
    assert [(r.attempt, r.final) for r in failed] == [(1, False), (2, False)]  # type: ignore[attr-defined]
    assert all(r.asset == "silver.flaky" and "ConnectionError" in r.error for r in failed)  # type: ignore[attr-defined]
    # Recovered within its retries: nothing to open, nobody to wake.
    assert not env.exists(INCIDENTS)
    assert smtp[0].messages == [] and teams[0] == []


def test_a_step_that_always_fails_opens_one_incident_and_alerts_each_channel_once(
    env: Lake,
    tmp_path: Path,
    step_log: list[logging.LogRecord],
    smtp: tuple[_Inbox, int],
    teams: tuple[list[dict[str, Any]], str],
) -> None:
    root = tmp_path / "models"
    contract = "description: Broken on purpose.\ngrain: one row\nkeys: [n]\nwrite_mode: full\n"
    # The error DuckDB raises quotes the text it could not convert: here, a credential.
    _write_model(root, "silver", "broken", f"SELECT CAST('token {API_TOKEN} refused' AS INTEGER) AS n", contract)
    job = build_definitions(models_root=root, sources={}, retry_delay_s=0.01).resolve_job_def(MODELS_JOB)

    result = job.execute_in_process(raise_on_error=False)

    assert not result.success
    assert [r.final for r in step_log if r.getMessage() == "step failed"] == [False, False, False, True]  # type: ignore[attr-defined]
    rows = incidents(env)
    assert len(rows) == 1
    incident = rows[0]
    assert (incident["asset"], incident["partition"], incident["status"], incident["occurrences"]) == (
        "silver.broken",
        None,
        "open",
        1,
    )
    assert "Conversion Error" in incident["error"] and "***" in incident["error"]

    inbox, posts = smtp[0], teams[0]
    assert len(inbox.messages) == 1 and len(posts) == 1
    assert inbox.logins == [(SMTP_USER, SMTP_PASSWORD)]
    mail, post = inbox.messages[0], posts[0]
    assert mail["To"] == "data-oncall@retreasure.test, ops@retreasure.test"
    mail_text = f"{mail['Subject']}\n{mail.get_payload()}"
    card = post["json"]["attachments"][0]
    assert post["json"]["type"] == "message" and card["contentType"] == "application/vnd.microsoft.card.adaptive"
    teams_text = json.dumps(card["content"])
    dagster_text = json.dumps([str(e.event_specific_data) for e in result.all_events if e.is_step_failure])
    secrets = [API_TOKEN, SMTP_PASSWORD, WEBHOOK_SIGNATURE]
    assert "silver.broken" in mail["Subject"] and "silver.broken" in teams_text
    # Dagster's own run history (the UI's error view) gets the masked failure too.
    for text in (mail_text, teams_text, incident["error"], dagster_text):
        assert "Conversion Error" in text
        assert not any(secret in text for secret in secrets), text
    assert incident["incident_id"] in mail_text and incident["incident_id"] in teams_text

    # The same asset failing again: the open incident is updated, not a second one opened; one more alert each.
    assert not job.execute_in_process(raise_on_error=False).success
    rows = incidents(env)
    assert [(r["incident_id"], r["occurrences"], r["status"]) for r in rows] == [(incident["incident_id"], 2, "open")]
    assert len(inbox.messages) == 2 and len(posts) == 2

    # Fixed: the next success resolves it, and says nothing more on the channels.
    _write_model(root, "silver", "broken", "SELECT 1 AS n", contract)
    fixed = build_definitions(models_root=root, sources={}, retry_delay_s=0.01).resolve_job_def(MODELS_JOB)
    assert fixed.execute_in_process().success
    rows = incidents(env)
    assert [(r["incident_id"], r["status"]) for r in rows] == [(incident["incident_id"], "resolved")]
    assert rows[0]["resolved_at"] is not None
    assert len(inbox.messages) == 2 and len(posts) == 2


def test_a_source_that_cannot_be_reached_fails_its_bronze_step_into_one_incident(
    env: Lake,
    monkeypatch: pytest.MonkeyPatch,
    smtp: tuple[_Inbox, int],
    teams: tuple[list[dict[str, Any]], str],
) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("RETREASURE_SHOPIFY__BASE_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("RETREASURE_PII_HMAC_KEY", "alerts-test-hmac-key-0123456789")
    monkeypatch.setenv("RETREASURE_HTTP__BACKOFF_BASE_S", "0.01")
    monkeypatch.setenv("RETREASURE_HTTP__BACKOFF_MAX_S", "0.02")
    get_settings.cache_clear()
    defs = build_definitions(
        models_root=Path(env.uri) / "no-models", sources={"shopify": ShopifySource}, retry_delay_s=0.01
    )

    result = defs.resolve_job_def(INGEST_JOB).execute_in_process(raise_on_error=False)

    assert not result.success
    assert len([e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 3
    rows = incidents(env)
    assert [(r["asset"], r["occurrences"], r["status"]) for r in rows] == [("bronze.shopify", 1, "open")]
    assert "bronze.shopify_orders" in rows[0]["error"] and "ConnectError" in rows[0]["error"]
    # Each attempt logged its failed entities in the ingest log, as any ingest does.
    failed = env.query("SELECT count(*) AS n FROM ops.ingest_log WHERE status = 'failed'", [INGEST_LOG])
    assert failed.column("n")[0].as_py() == 4 * len(ShopifySource.entities)
    assert len(smtp[0].messages) == 1 and len(teams[0]) == 1
    assert "bronze.shopify" in smtp[0].messages[0]["Subject"]
