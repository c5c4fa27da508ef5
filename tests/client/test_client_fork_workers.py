"""A client and recorders made before os.fork(), used in the children: they work there or refuse, never queue silently.

A script run in its own interpreter (pytest's process has threads, which a
fork must not copy) makes a client, opens it and sends in its first event
loop, starts one recorder and makes another it does not start; then it
forks children. Each child, in an event loop of its own, sends with the
inherited client (which opens a session of its own), records through the
unstarted recorder, and tries the started one, which must refuse with
``RecorderStateError``. Every event a child had acknowledged must be at the
emulator exactly once.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from aiopersonalize_events.emulator import Emulator

CHILDREN = 3
PER_CHILD = 20

SCRIPT = r"""
import asyncio, json, os, sys
import aiohttp
from aiopersonalize_events import ClientStateError, Credentials, Event, PersonalizeEventsClient, RecorderStateError

endpoint, out, children, per_child = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
keys = Credentials("AKIDFORK00000000001", "s")
client = PersonalizeEventsClient(region="us-east-1", endpoint_url=endpoint, credentials=keys)
started = client.event_recorder(tracking_id="t", flush_interval=0.01)
unstarted = client.event_recorder(tracking_id="t", flush_interval=0.01)
given = []  # a client on a session the caller made (in the parent)

def event(tag):
    return Event(event_type="click", item_id="i", event_id=tag, sent_at=1_700_000_000)

async def parent_first():
    await client.open()
    await client.put_events(tracking_id="t", session_id="parent", event_list=[event("parent-0")])
    started.record(event("parent-started-0"), session_id="parent")  # started here, in the parent's loop
    own = aiohttp.ClientSession()
    other = PersonalizeEventsClient(region="us-east-1", endpoint_url=endpoint, credentials=keys, session=own)
    await other.put_events(tracking_id="t", session_id="parent", event_list=[event("parent-given-0")])
    given.append(other)
    await asyncio.sleep(0)

async def child(index):
    acked = []
    for i in range(per_child // 2):
        tag = f"c{index}-call-{i}"
        await client.put_events(tracking_id="t", session_id=f"child{index}", event_list=[event(tag)])
        acked.append(tag)
    tags = [f"c{index}-rec-{i}" for i in range(per_child - per_child // 2)]
    async with unstarted as recorder:
        for tag in tags:
            assert recorder.record(event(tag), session_id=f"child{index}")
    stats = unstarted.stats
    if stats.sent == len(tags) and stats.failed == 0 and stats.dropped == 0:
        acked += tags
    try:
        started.record(event(f"c{index}-inherited"), session_id="x")
        refused = ""
    except RecorderStateError as exc:
        refused = str(exc)
    await started.close()  # a no-op in the child: never raises, never touches the parent's loop
    try:
        await given[0].put_events(tracking_id="t", session_id="x", event_list=[event(f"c{index}-given")])
        session_refused = ""
    except ClientStateError as exc:
        session_refused = str(exc)
    await client.close()
    return {
        "acked": acked, "refused": refused, "session_refused": session_refused,
        "stats": [stats.sent, stats.failed, stats.dropped],
    }

asyncio.run(parent_first())
pids = []
for index in range(children):
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            result = asyncio.run(child(index))
            with open(os.path.join(out, f"child-{index}.json"), "w") as handle:
                json.dump(result, handle)
        except BaseException as exc:
            with open(os.path.join(out, f"child-{index}.error"), "w") as handle:
                handle.write(repr(exc))
            code = 1
        os._exit(code)
    pids.append(pid)
failed = 0
for pid in pids:
    _, status = os.waitpid(pid, 0)
    failed += os.waitstatus_to_exitcode(status) != 0
print(json.dumps({"failed_children": failed}))
"""


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="os.fork is POSIX only")
async def test_children_of_a_fork_send_with_the_inherited_client_and_refuse_the_started_recorder(
    tmp_path: Path,
) -> None:
    """Each child's acknowledged events (direct calls, an unstarted recorder) arrive once; a started recorder
    and a client on the caller's session refuse there."""
    async with Emulator() as emu:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            SCRIPT,
            emu.endpoint_url,
            str(tmp_path),
            str(CHILDREN),
            str(PER_CHILD),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 120)
        events = emu.events(tracking_id="t")
        duplicates = emu.duplicates
    assert process.returncode == 0, stderr.decode()
    errors = [p.read_text() for p in tmp_path.glob("*.error")]  # noqa: ASYNC240  # after the subprocess ended
    assert json.loads(stdout.decode().splitlines()[-1]) == {"failed_children": 0}, errors
    seen = [e["eventId"] for e in events]
    assert "parent-0" in seen
    for index in range(CHILDREN):
        result = json.loads((tmp_path / f"child-{index}.json").read_text())
        assert result["stats"] == [PER_CHILD // 2, 0, 0]
        assert len(result["acked"]) == PER_CHILD
        for tag in result["acked"]:
            assert seen.count(tag) == 1, tag
        assert "started before os.fork()" in result["refused"]
        assert f"c{index}-inherited" not in seen
        assert "created before os.fork()" in result["session_refused"]
        assert f"c{index}-given" not in seen
    assert duplicates == 0
