"""The command line's one path per record: each line checked and built once, each request built once per call."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

import pytest
from _counting import counting

from aiopersonalize_events import _shapes, serde
from aiopersonalize_events.cli import main
from aiopersonalize_events.emulator import Emulator


async def test_each_line_is_built_and_validated_once_and_each_request_once_per_call(
    personalize_emulator: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """put-events over 57 lines: from_wire and Event() run once a line, PutEventsRequest() once a call."""
    sessions = {"s1": 23, "s2": 30, "s3": 4}
    lines = []
    for session, count in sessions.items():
        for i in range(count):
            lines.append(
                json.dumps(
                    {"sessionId": session, "userId": f"u-{session}", "eventType": "click", "sentAt": 1_700_000_000 + i}
                )
            )
    lines = lines[::2] + lines[1::2]  # interleave the sessions
    source = tmp_path / "events.jsonl"
    source.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    counts: Counter[str] = Counter()
    monkeypatch.setattr(serde, "from_wire", counting(counts, "from_wire", serde.from_wire))
    monkeypatch.setattr(_shapes.Event, "__init__", counting(counts, "Event", _shapes.Event.__init__))
    request_init = _shapes.PutEventsRequest.__init__
    monkeypatch.setattr(_shapes.PutEventsRequest, "__init__", counting(counts, "PutEventsRequest", request_init))

    args = ["put-events", "--tracking-id", "t", "--endpoint-url", personalize_emulator.endpoint_url, "--no-progress"]
    status = await asyncio.to_thread(main, [*args, str(source)])  # the emulator answers on this loop meanwhile

    assert status == 0, capsys.readouterr().err
    calls = personalize_emulator.calls[("PutEvents", 200)]
    assert calls == 3 + 3 + 1  # ten a call, by session
    assert len(personalize_emulator.events("t")) == len(lines)
    assert counts == {"from_wire": len(lines), "Event": len(lines), "PutEventsRequest": calls}
