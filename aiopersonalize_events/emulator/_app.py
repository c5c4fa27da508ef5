"""The Emulator: an aiohttp.web application that answers as the Personalize Events service does.

One route per entry of the operations table (``POST /events``, ...). Each
call goes through the same steps as at the service: read the body, check the
SigV4 signature, draw the injected fault (if any), parse and check the JSON,
look the tracker or dataset up, take a token from the rate quota, store the
records, answer; then wait the injected latency. Anything refused stores
nothing. Two read-only routes, ``GET /_emulator/records/{kind}`` and
``GET /_emulator/calls``, show what was accepted to processes that did not
start the emulator.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from .._operations import OPERATIONS, Operation
from ._answers import (
    Refusal,
    error_response,
    internal_failure,
    new_request_id,
    resource_not_found,
    service_unavailable,
    success_response,
    throttled,
    too_large,
    unknown_operation,
)
from ._faults import DEFAULT_QUOTAS, Fault, FaultInjector, Faults, Quotas
from ._server import Server
from ._sigv4 import DEFAULT_MAX_SKEW, SignatureVerifier
from ._store import Store
from ._wire import WIRE, Struct, WireOperation, check_request, parse_body

__all__ = ["KINDS", "Emulator"]

log: Final = logging.getLogger("aiopersonalize_events.emulator")

KINDS: Final[Mapping[str, WireOperation]] = {wire.kind: wire for wire in WIRE.values()}
"""Where records are kept (``events``, ``items``, ``users``, ``actions``, ``action-interactions``)."""

_DEFAULT_MAX_BODY: Final = 8 * 1024 * 1024
_SHUTDOWN_TIMEOUT: Final = 2.0
_THREAD_TIMEOUT: Final = 30.0

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _fault_refusal(fault: Fault) -> Refusal:
    if fault is Fault.THROTTLE:
        return throttled()
    if fault is Fault.INTERNAL_FAILURE:
        return internal_failure()
    return service_unavailable()


class Emulator:
    """A local, faithful stand-in for the Amazon Personalize Events service.

    ``async with Emulator() as emu:`` serves it on ``emu.endpoint_url``
    (loopback, a free port by default) in the running loop; ``with
    Emulator() as emu:`` serves it from a background thread, for synchronous
    code such as boto3. ``credentials`` maps access key ids to secret keys
    and turns on SigV4 verification (None checks the signature's form only).
    ``faults`` injects throttling, server errors, dropped connections and
    latency; ``quotas`` (True for the service's defaults, or a mapping of
    operation name to requests per second) turns on rate quotas.
    ``tracking_ids`` and ``dataset_arns``, when given, are the only known
    resources and any other gets 404 ``ResourceNotFoundException``; by
    default every tracking id and well-formed dataset ARN is accepted.
    ``region`` restricts the credential scope's region; ``clock`` (monotonic,
    for quotas), ``wall_clock`` (epoch seconds, for signature dates) and
    ``sleep`` (for latency) are injectable for tests.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        credentials: Mapping[str, str] | None = None,
        faults: Faults | None = None,
        *,
        region: str | None = None,
        tracking_ids: Iterable[str] | None = None,
        dataset_arns: Iterable[str] | None = None,
        quotas: bool | Mapping[str, float] = False,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        max_clock_skew: float = DEFAULT_MAX_SKEW,
        max_body_bytes: int = _DEFAULT_MAX_BODY,
    ) -> None:
        self._verifier = SignatureVerifier(credentials, region=region, max_skew=max_clock_skew, wall_clock=wall_clock)
        self._injector = FaultInjector(faults if faults is not None else Faults())
        if quotas is True:
            self._quotas: Quotas | None = Quotas(DEFAULT_QUOTAS, clock)
        elif quotas is False or not quotas:
            self._quotas = None
        else:
            self._quotas = Quotas(quotas, clock)
        self._tracking_ids = set(tracking_ids) if tracking_ids is not None else None
        self._dataset_arns = set(dataset_arns) if dataset_arns is not None else None
        self._sleep = sleep
        self._max_body = max_body_bytes
        self._store = Store()
        self._server = Server(host, port, shutdown_timeout=_SHUTDOWN_TIMEOUT)
        self._thread: threading.Thread | None = None
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._routes: list[tuple[str, str, _Handler]] = []
        for op in OPERATIONS:
            wire = WIRE.get(op.name)
            if wire is None or wire.record_member != op.record_wire or wire.resource_member != op.resource_wire:
                raise RuntimeError(f"the emulator does not know the wire form of {op.name}; update emulator/_wire.py")
            self._routes.append(("POST", op.path, self._handler(op, wire)))

    def __repr__(self) -> str:
        where = self._server.url or "not started"
        return f"Emulator({where}, verifier={self._verifier!r}, faults={self.faults!r}, quotas={self._quotas!r})"

    # -- lifecycle ---------------------------------------------------------------------------------------------

    def make_app(self) -> web.Application:
        """A new aiohttp application serving this emulator (to embed it in another server or test utility)."""
        app = web.Application(client_max_size=self._max_body)
        for method, path, handler in self._routes:
            app.router.add_route(method, path, handler)
        app.router.add_get("/_emulator/records/{kind}", self._inspect_records)
        app.router.add_get("/_emulator/calls", self._inspect_calls)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        return app

    @property
    def endpoint_url(self) -> str:
        """``http://HOST:PORT`` of the running emulator, for clients' ``endpoint_url``."""
        url = self._server.url
        if url is None:
            raise RuntimeError("the emulator is not running; use 'async with Emulator() as emu' or start()")
        return url

    async def start(self) -> None:
        """Start serving in the running loop; ``async with`` calls this."""
        if self._server.running:
            raise RuntimeError("the emulator is already running")
        url = await self._server.start(self.make_app())
        log.debug("emulator listening on %s", url)

    async def stop(self) -> None:
        """Stop serving and close open connections; idempotent. Stored records are kept."""
        await self._server.stop()

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    def __enter__(self) -> Emulator:
        if self._thread is not None:
            raise RuntimeError("the emulator is already running in a thread")
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=_run_loop, args=(loop,), name="personalize-emulator", daemon=True)
        thread.start()
        self._thread, self._thread_loop = thread, loop
        try:
            asyncio.run_coroutine_threadsafe(self.start(), loop).result(_THREAD_TIMEOUT)
        except BaseException:
            self._end_thread()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        loop = self._thread_loop
        if loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self.stop(), loop).result(_THREAD_TIMEOUT)
        finally:
            self._end_thread()

    def _end_thread(self) -> None:
        loop, thread = self._thread_loop, self._thread
        self._thread_loop = self._thread = None
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(_THREAD_TIMEOUT)

    # -- configuration at run time ----------------------------------------------------------------------------

    @property
    def faults(self) -> Faults:
        """The faults injected now; assign a new ``Faults`` (or None) to change them while running."""
        return self._injector.faults

    @faults.setter
    def faults(self, faults: Faults | None) -> None:
        self._injector = FaultInjector(faults if faults is not None else Faults())

    @property
    def verifying(self) -> bool:
        """True when signatures are verified against ``credentials``."""
        return self._verifier.verifying

    @property
    def quotas(self) -> Quotas | None:
        """The request-rate quotas, or None when they are off."""
        return self._quotas

    def register(self, *, tracking_ids: Iterable[str] = (), dataset_arns: Iterable[str] = ()) -> None:
        """Declare known tracking ids and dataset ARNs.

        Registering the first of a kind turns its check on: from then on a
        call naming an unregistered one gets 404 ``ResourceNotFoundException``.
        """
        tracking = list(tracking_ids)
        arns = list(dataset_arns)
        if tracking:
            self._tracking_ids = (self._tracking_ids or set()) | set(tracking)
        if arns:
            self._dataset_arns = (self._dataset_arns or set()) | set(arns)

    def reset(self) -> None:
        """Forget every stored record, duplicate and counted call, and refill the quotas.

        Faults, registered resources and credentials stay as they are.
        """
        self._store.clear()
        if self._quotas is not None:
            self._quotas.reset()

    # -- what was accepted ------------------------------------------------------------------------------------

    def events(self, tracking_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted events in arrival order, wire form, with ``trackingId``, ``sessionId`` and ``userId`` (if sent)."""
        return self._store.stream("events", tracking_id)

    def action_interactions(self, tracking_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted action interactions in arrival order, wire form, each with ``trackingId``."""
        return self._store.stream("action-interactions", tracking_id)

    def items(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        """Current items (last write per ``itemId``), wire form, each with ``datasetArn``."""
        return self._store.dataset("items", dataset_arn)

    def users(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        """Current users (last write per ``userId``), wire form, each with ``datasetArn``."""
        return self._store.dataset("users", dataset_arn)

    def actions(self, dataset_arn: str | None = None) -> list[dict[str, Any]]:
        """Current actions (last write per ``actionId``), wire form, each with ``datasetArn``."""
        return self._store.dataset("actions", dataset_arn)

    def records(self, kind: str, resource: str | None = None) -> list[dict[str, Any]]:
        """The records of ``kind`` (a key of ``KINDS``), of one tracker or dataset or of all."""
        wire = KINDS.get(kind)
        if wire is None:
            raise KeyError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
        if wire.first_wins:
            return self._store.stream(kind, resource)
        return self._store.dataset(kind, resource)

    @property
    def duplicates(self) -> int:
        """Events (and action interactions) received again with an ``eventId`` already accepted."""
        return self._store.duplicates

    @property
    def calls(self) -> Counter[tuple[str, int]]:
        """A count of answered calls by (operation name, HTTP status); a dropped connection is status 0."""
        return self._store.calls

    # -- the request pipeline ---------------------------------------------------------------------------------

    def _handler(self, op: Operation, wire: WireOperation) -> _Handler:
        request_check = wire.request(op.records_per_call)

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._serve(op, wire, request_check, request)

        return handle

    async def _serve(
        self, op: Operation, wire: WireOperation, request_check: Struct, request: web.Request
    ) -> web.StreamResponse:
        started = time.perf_counter()
        request_id = new_request_id()
        injector = self._injector
        latency = injector.faults.latency
        records = 0
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise too_large(self._max_body) from None
            except ConnectionError:  # the caller went away mid-body: nothing to answer
                self._finish(op.name, 0, "caller-disconnected", records, started)
                return web.Response(status=400)
            url = request.rel_url
            self._verifier.verify(request.method, url.raw_path, url.raw_query_string, request.headers, body)
            fault = injector.draw()
            if fault is Fault.DISCONNECT:
                if latency:
                    await self._sleep(latency)
                _drop(request)
                self._finish(op.name, 0, "dropped", records, started)
                return web.Response(status=500)  # never sent: the connection is closed
            if fault is not None:
                raise _fault_refusal(fault)
            data = parse_body(body)
            found = data.get(wire.record_member) if isinstance(data, dict) else None
            records = len(found) if isinstance(found, list) else 0
            checked = check_request(wire, request_check, data, len(body))
            resource: str = checked[wire.resource_member]
            self._check_known(wire, resource)
            if self._quotas is not None and not self._quotas.allow(op.name, resource):
                raise throttled()
            self._keep(wire, checked, resource)
            response = success_response(request_id)
            code = ""
        except Refusal as refusal:
            response = error_response(refusal, request_id)
            code = refusal.code
        except Exception:
            log.exception("%s: the emulator failed on a request (request id %s)", op.name, request_id)
            failure = internal_failure()
            response = error_response(failure, request_id)
            code = failure.code
        if latency:
            await self._sleep(latency)
        self._finish(op.name, response.status, code, records, started)
        return response

    def _check_known(self, wire: WireOperation, resource: str) -> None:
        if wire.resource_member == "trackingId":
            if self._tracking_ids is not None and resource not in self._tracking_ids:
                raise resource_not_found(f"Could not find an event tracker with tracking id '{resource}'.")
        elif self._dataset_arns is not None and resource not in self._dataset_arns:
            raise resource_not_found(f"Could not find the dataset '{resource}'.")

    def _keep(self, wire: WireOperation, data: dict[str, Any], resource: str) -> None:
        records = [wire.record.project(r) for r in data[wire.record_member]]
        if wire.first_wins:
            added = {
                name: data[name] for name in wire.members if name != wire.resource_member and data.get(name) is not None
            }
            self._store.append_events(wire.kind, wire.record_id, resource, records, added)
        else:
            self._store.upsert(wire.kind, wire.record_id, resource, records)

    def _finish(self, operation: str, status: int, code: str, records: int, started: float) -> None:
        self._store.count_call(operation, status)
        if log.isEnabledFor(logging.INFO):
            ms = (time.perf_counter() - started) * 1000.0
            log.info("%s %d%s records=%d %.1fms", operation, status, f" {code}" if code else "", records, ms)

    # -- inspection and unknown routes ------------------------------------------------------------------------

    async def _inspect_records(self, request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        wire = KINDS.get(kind)
        request_id = new_request_id()
        if wire is None:
            message = f"unknown kind '{kind}'; one of: {', '.join(KINDS)}"
            return web.json_response({"message": message}, status=404, headers={"x-amzn-RequestId": request_id})
        resource = request.query.get(wire.resource_member)
        return web.json_response(self.records(kind, resource), headers={"x-amzn-RequestId": request_id})

    async def _inspect_calls(self, request: web.Request) -> web.Response:
        calls = [
            {"operation": name, "status": status, "count": count}
            for (name, status), count in sorted(self.calls.items())
        ]
        body = {"calls": calls, "duplicates": self.duplicates}
        return web.json_response(body, headers={"x-amzn-RequestId": new_request_id()})

    async def _unknown(self, request: web.Request) -> web.Response:
        return error_response(unknown_operation(), new_request_id())


def _drop(request: web.Request) -> None:
    """Close the connection under ``request`` without an answer."""
    request.protocol.force_close()
    transport = request.transport
    if transport is not None:
        transport.close()


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
