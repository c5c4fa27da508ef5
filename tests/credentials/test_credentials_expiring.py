"""Credentials expiring mid-stream: a steady recorder load while the provider's keys expire every two seconds.

The provider is the library's ``RefreshingProvider`` over a source that
mints a new key pair and session token on each fetch, valid for
``LIFETIME`` seconds, with refresh windows scaled down to match. The
emulator knows every key it may be given, verifies each signature, and an
aiohttp middleware in front of it plays the service's token check: a
request whose key has expired (or whose token is not the key's) gets 403
``ExpiredTokenException``, which is not retried, so a single call signed
with expired credentials would lose events and fail the test.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import pytest
from aiohttp import web

from aiopersonalize_events import ClientConfig, Credentials, Event, PersonalizeEventsClient, RefreshingProvider
from aiopersonalize_events.emulator import Emulator

TRACKER = "tracker-rotation"
LIFETIME = 2.0  # seconds each key pair lives
ADVISORY = 1.0  # refresh this long before expiry (the library's default is 15 minutes)
MANDATORY = 0.8  # from this long before expiry, callers wait for fresh credentials (default: 10 minutes)
RUN_SECONDS = 4.5  # on the test's wall clock (WallClock): 45 steps of STEP
STEP = 0.1  # the wall clock moves this much between two rounds of 20 events, never while a call is out
KEYS = 40


@attrs.define
class WallClock:
    """The wall clock the source, the provider and the token check share: it moves only when the test says.

    Expiry is decided on it, not on the machine's clock, so a slow machine cannot make a call arrive after
    its key expired (or not): the test decides by the keys' lifetimes, never by how long a call took.
    """

    now: datetime = attrs.field(factory=lambda: datetime.now(timezone.utc))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@attrs.frozen
class KeyPair:
    key_id: str
    secret: str
    token: str


@attrs.define
class Rotation:
    """Mints key pairs in order; remembers when each expires."""

    pairs: list[KeyPair] = attrs.field(
        repr=False,
        factory=lambda: [
            KeyPair(f"AKIDROTATION{n:08d}", secrets.token_urlsafe(30), secrets.token_urlsafe(60)) for n in range(KEYS)
        ],
    )
    expires: dict[str, datetime] = attrs.field(factory=dict)
    minted: int = 0
    clock: WallClock = attrs.field(factory=WallClock)

    async def fetch(self) -> Credentials:
        pair = self.pairs[self.minted]
        self.minted += 1
        expiration = self.clock() + timedelta(seconds=LIFETIME)
        self.expires[pair.key_id] = expiration
        return Credentials(pair.key_id, pair.secret, pair.token, expiration)

    def token_of(self, key_id: str) -> str | None:
        return next((p.token for p in self.pairs if p.key_id == key_id), None)


@attrs.define
class Watched:
    """A CredentialProvider around another, noting every hand-out (the moment the client signs with it)."""

    inner: RefreshingProvider
    inner_clock: WallClock
    handed: Counter[str] = attrs.field(factory=Counter)
    expired_handouts: int = 0

    async def resolve(self) -> Credentials:
        credentials = await self.inner.resolve()
        assert credentials.expiration is not None
        if credentials.expiration <= self.inner_clock():
            self.expired_handouts += 1
        self.handed[credentials.access_key_id] += 1
        return credentials


@attrs.define
class TokenCheck:
    """The service's expiry check, as a middleware in front of the emulator."""

    rotation: Rotation
    seen: Counter[str] = attrs.field(factory=Counter)
    refused: list[str] = attrs.field(factory=list)
    margins: list[float] = attrs.field(factory=list)  # seconds each request arrived before its key's expiry

    def middleware(self) -> Any:
        @web.middleware
        async def check(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            return await self.check(request, handler)

        return check

    async def check(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        key_id = header.partition("Credential=")[2].partition("/")[0]
        token = request.headers.get("X-Amz-Security-Token")
        expiry = self.rotation.expires.get(key_id)
        now = self.rotation.clock()
        self.seen[key_id] += 1
        if expiry is None or token != self.rotation.token_of(key_id) or now >= expiry:
            self.refused.append(key_id)
            return web.json_response(
                {"message": "The security token included in the request is expired"},
                status=403,
                headers={"x-amzn-ErrorType": "ExpiredTokenException:", "x-amzn-RequestId": "expired"},
            )
        self.margins.append((expiry - now).total_seconds())
        return await handler(request)


@pytest.fixture
async def service() -> AsyncIterator[tuple[Emulator, Rotation, TokenCheck, str]]:
    rotation = Rotation()
    emu = Emulator(credentials={p.key_id: p.secret for p in rotation.pairs})
    check = TokenCheck(rotation)
    app = emu.make_app()
    app.middlewares.append(check.middleware())
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield emu, rotation, check, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_credentials_expiring_every_two_seconds_never_sign_a_call_and_lose_nothing(
    service: tuple[Emulator, Rotation, TokenCheck, str],
) -> None:
    """Under steady load with keys expiring every 2 s: no call carries expired credentials, no event is lost.

    The 2 s are on the shared WallClock, which moves STEP between rounds of events (each round's calls are all
    answered first): expiry, refresh and the token check see the same time whatever the machine's speed.
    """
    emu, rotation, check, url = service
    clock = rotation.clock
    provider = Watched(
        RefreshingProvider(
            rotation.fetch,
            name="rotating test source",
            advisory_window=ADVISORY,
            mandatory_window=MANDATORY,
            clock=clock,
        ),
        clock,
    )
    failures: list[Any] = []
    recorded = 0
    started = clock()
    async with PersonalizeEventsClient(
        region="us-east-1", endpoint_url=url, credentials=provider, config=ClientConfig(max_attempts=2)
    ) as client:
        recorder = client.event_recorder(
            tracking_id=TRACKER, flush_interval=0.02, on_failure=lambda events, error: failures.append(error)
        )
        async with recorder:
            for _ in range(round(RUN_SECONDS / STEP)):
                for _ in range(20):
                    recorder.record(
                        Event(event_type="view", sent_at=1_700_000_000, event_id=f"e{recorded}"),
                        session_id=f"s{recorded // 5 % 50}",
                    )
                    recorded += 1
                await asyncio.wait_for(recorder.flush(), 30)  # a hang guard: this round's calls are answered
                clock.advance(STEP)
            await asyncio.wait_for(recorder.flush(), 30)
        stats = recorder.stats
    duration = (clock() - started).total_seconds()

    assert check.refused == []  # no call signed with an expired (or mismatched) key
    assert provider.expired_handouts == 0
    assert failures == []
    assert (stats.recorded, stats.sent, stats.failed, stats.dropped, stats.pending) == (recorded, recorded, 0, 0, 0)
    ids = Counter(e["eventId"] for e in emu.events(TRACKER))
    assert set(ids) == {f"e{n}" for n in range(recorded)}
    assert max(ids.values()) == 1
    used = [key for key in check.seen if check.seen[key]]
    assert len(used) >= 3, used  # the keys really rotated while events flowed
    assert set(used) <= set(rotation.expires)
    assert min(check.margins) > 0
    print(
        f"rotation: {recorded} events in {duration:.1f}s, {sum(check.seen.values())} calls signed with "
        f"{len(used)} keys (each lives {LIFETIME}s; calls per key {list(check.seen.values())}), "
        f"closest call to an expiry {min(check.margins):.2f}s before it, 0 refused"
    )
