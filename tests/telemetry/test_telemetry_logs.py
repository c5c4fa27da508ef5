"""Logs an operator can use: the client's lines name the operation, the attempt and the request id; no line, at
any level down to DEBUG, carries a secret or a sensitive value; every logger is documented in the observability
guide."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import re
from pathlib import Path
from typing import Any

import pytest

import aiopersonalize_events
from aiopersonalize_events import (
    Action,
    ActionInteraction,
    ClientConfig,
    Credentials,
    Event,
    Item,
    PersonalizeEventsClient,
    PersonalizeEventsError,
    ResourceNotFoundException,
    User,
)
from aiopersonalize_events._operations import OPERATIONS
from aiopersonalize_events.emulator import Emulator, Faults

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
PACKAGE_DIR = Path(aiopersonalize_events.__file__).parent

SECRET_KEY = "logs/secret/MARK-SECRET-0002"
SESSION_TOKEN = "MARK-TOKEN-logs-session-token"
TRACKING_ID = "MARK-tracking-logs"
ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/MARK-dsg/ITEMS"
SENSITIVE = (SECRET_KEY, SECRET_KEY[:12], SESSION_TOKEN, "MARK", "123456789012")
"""Every id, property, tracking id, dataset ARN and credential here carries MARK (or the account id)."""

OPERATION = "|".join(op.name for op in OPERATIONS)
REQUEST_ID = r"request id [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CLIENT_LINE = re.compile(
    rf"^({OPERATION}) ("
    rf"attempt \d+: .+"
    rf"|attempt \d+ failed \(.+\); retrying in \d+\.\d+s"
    rf"|ok: HTTP 200, {REQUEST_ID}, attempt \d+"
    rf"|failed at attempt \d+ \((not retryable|attempts used up|retry budget empty)\): .+"
    rf")$"
)


def _event(n: int) -> Event:
    return Event(
        event_type="click",
        sent_at=1_764_000_000 + n,
        event_id=f"MARK-event-{n}",
        item_id=f"MARK-item-{n}",
        properties={"MARK-key": f"MARK-value-{n}"},
        recommendation_id=f"MARK-rec-{n}",
        impression=[f"MARK-imp-{n}"],
    )


async def _every_operation(client: PersonalizeEventsClient, n: int) -> None:
    interaction = ActionInteraction(
        action_id=f"MARK-a{n}", session_id="MARK-s", timestamp=1_764_000_000, event_type="Taken", user_id="MARK-u"
    )
    calls = [
        client.put_events(tracking_id=TRACKING_ID, session_id="MARK-s", user_id="MARK-u", event_list=[_event(n)]),
        client.put_items(dataset_arn=ARN, items=[Item(item_id=f"MARK-i{n}", properties={"k": "MARK-p"})]),
        client.put_users(dataset_arn=ARN.replace("ITEMS", "USERS"), users=[User(user_id=f"MARK-u{n}")]),
        client.put_actions(dataset_arn=ARN.replace("ITEMS", "ACTIONS"), actions=[Action(action_id=f"MARK-a{n}")]),
        client.put_action_interactions(tracking_id=TRACKING_ID, action_interactions=[interaction]),
    ]
    for call in calls:
        with contextlib.suppress(PersonalizeEventsError):
            await call


@pytest.mark.usefixtures("personalize_no_retry_waits")
async def test_debug_logs_name_operation_attempt_and_request_id_and_carry_no_sensitive_value(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Every operation and a recorder through throttling, 5xx, drops and a 404, logged at DEBUG: usable and clean."""
    caplog.set_level(logging.DEBUG, logger="aiopersonalize_events")
    emulator.faults = Faults(throttle=0.3, server_error=0.3, disconnect=0.15, seed=21)
    async with PersonalizeEventsClient(
        region="us-east-1",
        endpoint_url=emulator.endpoint_url,
        credentials=Credentials("AKIDLOGS000000000001", SECRET_KEY, SESSION_TOKEN),
        config=ClientConfig(max_attempts=3, retry_budget=60),
    ) as client:
        for n in range(8):
            await _every_operation(client, n)
        async with client.event_recorder(tracking_id=TRACKING_ID, flush_interval=0.05) as recorder:
            for n in range(30):
                recorder.record(_event(n), session_id="MARK-session", user_id="MARK-user")
            await recorder.flush()
        emulator.faults = None
        emulator.register(tracking_ids=["another-tracker"])
        with pytest.raises(ResourceNotFoundException) as caught:
            await client.put_events(tracking_id=TRACKING_ID, session_id="MARK-s", event_list=[_event(99)])
    assert TRACKING_ID in str(caught.value)  # the service's message names the tracker: no log line may

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    ours = [
        r
        for r in caplog.records
        if r.name.startswith("aiopersonalize_events") and r.name != "aiopersonalize_events.emulator"
    ]
    assert ours
    for record in ours:
        text = formatter.format(record) + repr(record.args)
        for value in SENSITIVE:
            assert value not in text, text

    client_lines = [r.getMessage() for r in ours if r.name == "aiopersonalize_events"]
    for line in client_lines:
        assert CLIENT_LINE.match(line), line
        if "(HTTP " in line:  # the service answered: its request id is in the line
            assert re.search(REQUEST_ID, line), line
    kinds = {re.sub(r"^\w+ ", "", line).split(" ")[0] for line in client_lines}
    assert {"attempt", "ok:", "failed"} <= kinds
    assert any("retry budget empty" in line or "attempts used up" in line for line in client_lines)
    assert any(
        line.startswith("PutEvents failed at attempt 1 (not retryable): ResourceNotFoundException")
        for line in client_lines
    )
    assert any("ThrottlingException (HTTP 400), request id" in line for line in client_lines)
    assert any("ConnectionClosedError" in line for line in client_lines)
    for op in OPERATIONS:
        assert any(line.startswith(op.name + " ") for line in client_lines), op.name
    await asyncio.sleep(0)


def _logger_names() -> set[str]:
    """Every ``logging.getLogger("...")`` name in the package's source."""
    names: set[str] = set()
    for path in PACKAGE_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                names.add(node.args[0].value)
    return names


def _observability_section() -> str:
    """The site's observability guide (docs/guides/observability.md; it was the README's Observability section)."""
    return (ROOT / "docs" / "guides" / "observability.md").read_text(encoding="utf-8")


def test_every_logger_is_documented_with_its_levels() -> None:
    """Each logger the package creates is in the observability guide's table, with what it logs at which level."""
    names = _logger_names()
    assert {"aiopersonalize_events", "aiopersonalize_events.recorder", "aiopersonalize_events.credentials"} <= names
    section = _observability_section()
    rows = {line.split("|")[1].strip().strip("`"): line for line in section.splitlines() if line.startswith("| `")}
    for name in names:
        assert name in rows, f"logger {name} is not documented"
        assert re.search(r"DEBUG|INFO|WARNING|ERROR", rows[name]), rows[name]


class _RecordingMeter:
    """A stand-in meter that notes the name of every instrument created on it."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def __getattr__(self, method: str) -> Any:
        def create(name: str, *args: Any, **kwargs: Any) -> Any:
            self.names.append(name)
            return self

        return create


def test_the_readme_names_every_instrument_and_attribute() -> None:
    """Every instrument the otel module creates, and every attribute key it defines, is in the Observability section."""
    otel: Any = pytest.importorskip("aiopersonalize_events.otel")
    meter = _RecordingMeter()
    otel._Instruments(meter)
    section = _observability_section()
    assert len(meter.names) == len(set(meter.names)) > 20
    for name in meter.names:
        assert f"`{name}`" in section, name
    keys = [value for name, value in vars(otel).items() if name.isupper() and isinstance(value, str) and "." in value]
    assert len(keys) >= 10
    for key in keys:
        assert f"`{key}`" in section, key
    for key in ("rpc.system", "rpc.service", "rpc.method", "server.address", "aws.request_id", "error.type"):
        assert f"`{key}`" in section, key
