"""The command line: JSON Lines streamed to the emulator, bad lines reported and kept, Ctrl-C accounted for."""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from _cli_support import ARN, _Terminal, emulator_fixture, read_jsonl, shared_emulator_fixture, write_lines  # noqa: F401 (the fixtures emulator and shared_emulator: imported, pytest finds them)

from aiopersonalize_events import _operations as ops
from aiopersonalize_events.cli import EXIT_INTERRUPTED, LineError, build_parser, main, parse_line
from aiopersonalize_events.cli.console import Console
from aiopersonalize_events.emulator import Emulator, Faults

USERS_ARN = "arn:aws:personalize:us-east-1:123456789012:dataset/cli/USERS"
_TIMEOUT = 60.0


def cli(*args: str, cwd: Path, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
    """Run ``python -m aiopersonalize_events ARGS`` and return the completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-m", "aiopersonalize_events", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=_TIMEOUT,
    )


def item_lines(count: int, *, broken_at: int | None = None) -> list[str]:
    """``count`` valid item lines, and a malformed line inserted at line number ``broken_at``."""
    lines = [json.dumps({"itemId": f"item-{i}", "properties": {"GENRE": "drama"}}) for i in range(count)]
    if broken_at is not None:
        lines.insert(broken_at - 1, '{"itemId": "broken", "properties": ')
    return lines


# -- against the emulator, as a subprocess ------------------------------------------------------------------------


def test_malformed_line_is_reported_kept_and_the_rest_stored(emulator: Emulator, tmp_path: Path) -> None:
    """250 valid lines and a malformed line 102: all 250 stored, line 102 named and in --failed-out, exit 1."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(250, broken_at=102))
    result = cli(
        "put-items",
        "--dataset-arn",
        ARN,
        "--endpoint-url",
        emulator.endpoint_url,
        "--failed-out",
        "failed.jsonl",
        str(source),
        cwd=tmp_path,
    )
    assert result.returncode == 1, result.stderr
    assert len(emulator.items(ARN)) == 250
    assert "line 102:" in result.stderr
    assert "sent 250, failed 1 (see failed.jsonl), 25 calls" in result.stderr
    [failed] = read_jsonl(tmp_path / "failed.jsonl")
    assert failed["line"] == 102
    assert "not valid JSON" in failed["reason"]
    assert failed["record"] == '{"itemId": "broken", "properties": '
    assert emulator.calls == {("PutItems", 200): 25}


def test_dry_run_sends_nothing(emulator: Emulator, tmp_path: Path) -> None:
    """--dry-run validates every line, makes no call (no credentials needed) and exits 0."""
    source = write_lines(tmp_path / "items.jsonl", item_lines(250))
    result = cli(
        "put-items",
        "--dataset-arn",
        ARN,
        "--endpoint-url",
        emulator.endpoint_url,
        "--dry-run",
        str(source),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "dry run: valid 250, invalid 0, nothing sent" in result.stderr
    assert not emulator.calls
    assert emulator.items() == []


def test_events_are_grouped_by_session_and_user(emulator: Emulator, tmp_path: Path) -> None:
    """put-events groups interleaved lines by (sessionId, userId) into calls of at most ten."""
    groups = {("s1", "u1"): 23, ("s1", None): 7, ("s2", "u2"): 10, ("s3", "u3"): 1}
    plan = [key for key, count in groups.items() for _ in range(count)]
    plan = plan[::2] + plan[1::2]  # interleave the sessions
    lines = []
    for n, (session, user) in enumerate(plan):
        line: dict[str, Any] = {"sessionId": session, "eventType": "click", "sentAt": 1_700_000_000 + n}
        if user is not None:
            line["userId"] = user
        line["eventId"] = f"e{n}"
        lines.append(json.dumps(line))
    source = write_lines(tmp_path / "events.jsonl", lines)
    result = cli(
        "put-events", "--tracking-id", "tracker", "--endpoint-url", emulator.endpoint_url, str(source), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    expected_calls = sum(math.ceil(count / 10) for count in groups.values())
    assert emulator.calls == {("PutEvents", 200): expected_calls}
    stored = {event["eventId"]: event for event in emulator.events("tracker")}
    assert len(stored) == len(plan)
    for n, (session, user) in enumerate(plan):
        event = stored[f"e{n}"]
        assert event["sessionId"] == session
        assert event.get("userId") == user


def test_events_without_an_id_get_one(emulator: Emulator, tmp_path: Path) -> None:
    """An event line without eventId is sent with a generated one, so a resend is de-duplicated."""
    line = json.dumps({"sessionId": "s", "eventType": "click", "sentAt": 1_700_000_000})
    result = cli(
        "put-events",
        "--tracking-id",
        "t",
        "--endpoint-url",
        emulator.endpoint_url,
        "-",
        stdin=line + "\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    [event] = emulator.events()
    assert len(event["eventId"]) == 32


def test_stdin_is_read_when_no_file_is_given(emulator: Emulator, tmp_path: Path) -> None:
    """With no FILE the command reads JSON Lines from standard input."""
    lines = [json.dumps({"userId": f"user-{i}", "properties": {"AGE": 20 + i}}) for i in range(12)]
    result = cli(
        "put-users",
        "--dataset-arn",
        USERS_ARN,
        "--endpoint-url",
        emulator.endpoint_url,
        stdin="\n".join(lines) + "\n",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(user["userId"] for user in emulator.users(USERS_ARN)) == sorted(f"user-{i}" for i in range(12))
    assert "sent 12, failed 0, 2 calls" in result.stderr


def test_ctrl_c_leaves_no_record_unaccounted_for(emulator: Emulator, tmp_path: Path) -> None:
    """SIGINT mid-stream: calls in flight finish, the rest go to --failed-out, exit 130; stored + failed == input."""
    count = 3000
    emulator.faults = Faults(latency=0.1)
    source = write_lines(tmp_path / "items.jsonl", item_lines(count))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiopersonalize_events",
            "put-items",
            "--dataset-arn",
            ARN,
            "--endpoint-url",
            emulator.endpoint_url,
            "--rate",
            "0",
            "--concurrency",
            "2",
            "--failed-out",
            "failed.jsonl",
            str(source),
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + _TIMEOUT
        while sum(emulator.calls.values()) < 4 and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert process.poll() is None, "the load ended before it could be interrupted"
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    stored = {item["itemId"] for item in emulator.items(ARN)}
    failed = read_jsonl(tmp_path / "failed.jsonl")
    unsent = {entry["record"]["itemId"] for entry in failed}
    assert 0 < len(stored) < count
    assert not stored & unsent
    assert len(stored) + len(failed) == count
    assert stored | unsent == {f"item-{i}" for i in range(count)}
    assert all(entry["reason"].startswith("not sent: interrupted") for entry in failed)
    assert f"interrupted: sent {len(stored)}, failed {len(failed)}" in stderr


def test_records_the_service_refuses_go_to_failed_out(tmp_path: Path) -> None:
    """An unknown tracker (404) not fixed within --setup-wait stops the run; every line is in --failed-out, exit 1."""
    lines = [json.dumps({"sessionId": f"s{i % 3}", "eventType": "click", "sentAt": 1_700_000_000}) for i in range(40)]
    source = write_lines(tmp_path / "events.jsonl", lines)
    with Emulator(tracking_ids=["known"]) as emulator:
        result = cli(
            "put-events",
            "--tracking-id",
            "unknown",
            "--endpoint-url",
            emulator.endpoint_url,
            "--failed-out",
            "failed.jsonl",
            "--setup-wait",
            "0",
            str(source),
            cwd=tmp_path,
        )
    assert result.returncode == 1, result.stderr
    failed = read_jsonl(tmp_path / "failed.jsonl")
    assert sorted(entry["line"] for entry in failed) == list(range(1, 41))
    refused = [entry for entry in failed if entry["reason"].startswith("ResourceNotFoundException")]
    assert refused
    assert all(entry["record"]["sessionId"] == f"s{(entry['line'] - 1) % 3}" for entry in failed)
    assert "stopped after ResourceNotFoundException" in result.stderr


def test_environment_credentials_sign_verified_requests(tmp_path: Path) -> None:
    """With AWS_* credentials and region in the environment, a verifying emulator accepts the calls; no secret shown."""
    secret = "cli-test-secret-value"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDCLITEST", AWS_SECRET_ACCESS_KEY=secret, AWS_REGION="eu-west-1")
    source = write_lines(tmp_path / "items.jsonl", item_lines(15))
    with Emulator(credentials={"AKIDCLITEST": secret}, region="eu-west-1") as emulator:
        result = cli(
            "put-items",
            "--dataset-arn",
            ARN,
            "--endpoint-url",
            emulator.endpoint_url,
            str(source),
            cwd=tmp_path,
            env=env,
        )
        assert result.returncode == 0, result.stderr
        assert len(emulator.items()) == 15
    assert secret not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["put-events", "events.jsonl"], "--tracking-id"),
        (["put-events", "--tracking-id", "t", "missing.jsonl"], "cannot open missing.jsonl"),
        (["put-items", "--dataset-arn", "not-an-arn", "events.jsonl"], "--dataset-arn"),
        (["put-items", "--dataset-arn", ARN, "--concurrency", "0", "events.jsonl"], "--concurrency"),
        (["put-events", "--tracking-id", "t", "events.jsonl"], "no AWS region"),
        (["put-events", "--tracking-id", "t", "--region", "US_EAST", "events.jsonl"], "--region"),
        (["put-events", "--tracking-id", "t", "--region", "us-east-1", "events.jsonl"], "no AWS credentials"),
        (["put-events", "--tracking-id", "t", "--failed-out", "no/such/dir/f.jsonl", "events.jsonl"], "--failed-out"),
        (["no-such-command"], "invalid choice"),
    ],
    ids=[
        "no-resource",
        "unreadable",
        "bad-arn",
        "bad-concurrency",
        "no-region",
        "bad-region",
        "no-credentials",
        "bad-failed-out",
        "bad-command",
    ],
)
def test_usage_errors_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    """Usage errors, unreadable input and a missing region (for a non-local endpoint) exit 2 and say why."""
    write_lines(tmp_path / "events.jsonl", [json.dumps({"sessionId": "s", "eventType": "e", "sentAt": 1})])
    result = cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_demo_runs_against_the_builtin_emulator(tmp_path: Path) -> None:
    """The demo sub-command exits 0 and shows each part of the tour."""
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for text in (
        "put_action_interactions",
        "1,003",
        "recorded == sent + failed + dropped + pending: True",
        "event_list[0].properties",
        "ResourceNotFoundException",
        "What the emulator received",
    ):
        assert text in result.stdout


# -- in process ---------------------------------------------------------------------------------------------------


def test_parse_line_refuses_malformed_json() -> None:
    """Text that is not JSON, or JSON that is not an object, is a LineError saying so."""
    with pytest.raises(LineError, match="not valid JSON"):
        parse_line(ops.PUT_ITEMS, '{"itemId": ', resource=ARN)
    with pytest.raises(LineError, match="must be a JSON object, not an array"):
        parse_line(ops.PUT_ITEMS, '[{"itemId": "i"}]', resource=ARN)


def test_parse_line_names_the_invalid_member_in_camel_case() -> None:
    """An invalid or unknown member is named as the input spells it."""
    line = '{"sessionId": "s", "eventType": "click", "sentAt": 1, "properties": {"userId": "u"}}'
    with pytest.raises(LineError, match=r"^properties: must not use the reserved key 'userId'"):
        parse_line(ops.PUT_EVENTS, line, resource="t")
    with pytest.raises(LineError, match=r"^sentAt: is required"):
        parse_line(ops.PUT_EVENTS, '{"sessionId": "s", "eventType": "click"}', resource="t")
    with pytest.raises(LineError, match=r"^metricAttribution.eventAttributionSource"):
        parse_line(
            ops.PUT_EVENTS,
            '{"sessionId": "s", "eventType": "c", "sentAt": 1, "metricAttribution": {"eventAttributionSource": " "}}',
            resource="t",
        )
    with pytest.raises(LineError, match=r"^colour: is not a member of Item"):
        parse_line(ops.PUT_ITEMS, '{"itemId": "i", "colour": "red"}', resource=ARN)


def test_parse_line_needs_a_session_id_for_events() -> None:
    """put-events lines carry sessionId (required) and userId (optional), validated like the request's."""
    with pytest.raises(LineError, match=r"^sessionId: is required"):
        parse_line(ops.PUT_EVENTS, '{"eventType": "click", "sentAt": 1}', resource="t")
    with pytest.raises(LineError, match=r"^sessionId: must not be empty"):
        parse_line(ops.PUT_EVENTS, '{"sessionId": "", "eventType": "click", "sentAt": 1}', resource="t")
    parsed = parse_line(
        ops.PUT_EVENTS, '{"sessionId": "s", "userId": "u", "eventType": "c", "sentAt": 1}', resource="t"
    )
    assert parsed.members == ("s", "u")
    assert parsed.record.event_id is None
    assigned = parse_line(
        ops.PUT_EVENTS, '{"sessionId": "s", "eventType": "c", "sentAt": 1}', resource="t", assign_event_id=True
    )
    assert assigned.record.event_id is not None


def test_parse_line_accepts_properties_as_object_or_string() -> None:
    """properties may be a JSON object or a string holding one; both give the same record."""
    a = parse_line(ops.PUT_ITEMS, '{"itemId": "i", "properties": {"A": 1}}', resource=ARN)
    b = parse_line(ops.PUT_ITEMS, '{"itemId": "i", "properties": "{\\"A\\":1}"}', resource=ARN)
    assert a.record == b.record


def test_dry_run_in_process_reports_each_kind_of_bad_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Blank lines are skipped; non-UTF-8, overlong and invalid lines are named by number and kept; exit 1."""
    source = tmp_path / "mixed.jsonl"
    with source.open("wb") as f:
        f.write(b'{"itemId": "ok-1"}\n')
        f.write(b"\n")
        f.write(b'{"itemId": "\xff"}\n')
        f.write(b'{"itemId": "' + b"x" * (1024 * 1024 + 10) + b'"}\n')
        f.write(b'{"itemId": ""}\n')
        f.write(b'{"itemId": "ok-2"}')  # no final newline
    failed = tmp_path / "failed.jsonl"
    status = main(["put-items", "--dataset-arn", ARN, "--dry-run", "--failed-out", str(failed), str(source)])
    err = capsys.readouterr().err
    assert status == 1
    assert "line 3: not UTF-8 text" in err
    assert "line 4: line longer than" in err
    assert "line 5: itemId: must not be empty" in err
    assert "dry run: valid 2, invalid 3" in err
    assert [entry["line"] for entry in read_jsonl(failed)] == [3, 4, 5]


def test_parser_offers_every_operation_and_the_emulator() -> None:
    """The sub-commands are the operations table's, plus emulator and demo; the emulator reuses its options."""
    parser = build_parser()
    for op in ops.OPERATIONS:
        option = "--" + op.resource_field.replace("_", "-")
        args = parser.parse_args([op.cli_name, option, "x"])
        assert args.file == "-"
        assert args.concurrency == 4
    args = parser.parse_args(["emulator", "--port", "0", "--throttle", "0.1"])
    assert args.throttle == 0.1


def test_importing_the_package_does_not_import_the_cli() -> None:
    """``import aiopersonalize_events`` leaves the command line (and tqdm) unimported."""
    code = (
        "import sys, aiopersonalize_events; "
        "assert 'aiopersonalize_events.cli' not in sys.modules; assert 'tqdm' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=_TIMEOUT)


def test_progress_bar_only_on_a_terminal_and_not_with_no_progress() -> None:
    """With tqdm installed the bar is drawn on a terminal only; never with --no-progress or on a pipe."""
    pytest.importorskip("tqdm")
    terminal = _Terminal()
    console = Console(terminal, progress=True, total_bytes=2000, unit="records")
    assert console.has_bar
    console.advance(10, 100)
    console.say("line 3: a problem")
    console.close()
    drawn = terminal.getvalue()
    assert "records" in drawn
    assert "line 3: a problem" in drawn
    assert "200" in drawn  # the estimated total: 10 records took 100 of 2000 bytes
    assert not Console(_Terminal(), progress=False, total_bytes=None, unit="records").has_bar
    assert not Console(io.StringIO(), progress=True, total_bytes=None, unit="records").has_bar
