"""aiopersonalize-events: an asyncio-native client for the Amazon Personalize Events API.

Stream interactions (``put_events``, ``put_action_interactions``) and catalog
records (``put_items``, ``put_users``, ``put_actions``) to Amazon Personalize
without blocking the event loop: validated shapes, SigV4 signing, retries
with a budget, batching helpers and a background ``EventRecorder``. The
emulator (``aiopersonalize_events.emulator``) and the command line load
lazily; OpenTelemetry traces and metrics (``aiopersonalize_events.otel``,
extra ``otel``) load only when imported, and are off until ``instrument()``.

``import aiopersonalize_events`` loads the shapes, the client and its
configuration, the credential chain (not its sources) and the errors. The
recorder with its delivery engine and the spools (``EventRecorder``,
``MemorySpool``, ``SqliteSpool``, ...) load the first time one of their
names is used (``client.event_recorder()`` or ``from aiopersonalize_events
import ...``), the network settings and the signer when a client opens.
"""

import typing as _typing

from ._batching import DEFAULT_RATE, BatchError, BatchFailure, BatchIncompleteError, BatchResult
from ._client import PersonalizeEventsClient, ResponseMetadata
from ._clock import Clock, ManualClock
from ._config import ClientConfig
from ._credentials import CredentialProvider, Credentials, RefreshingProvider
from ._retry import set_testing
from ._shapes import (
    Action,
    ActionInteraction,
    Event,
    Item,
    MetricAttribution,
    Properties,
    PutActionInteractionsRequest,
    PutActionsRequest,
    PutEventsRequest,
    PutItemsRequest,
    PutUsersRequest,
    Timestamp,
    User,
)
from ._version import __version__
from .errors import (
    AccessDeniedException,
    ClientRateLimitError,
    ClientStateError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    Fault,
    InvalidInputException,
    InvalidResponseError,
    NoCredentialsError,
    NoRegionError,
    PersonalizeEventsError,
    PoolTimeoutError,
    ReadTimeoutError,
    ResourceInUseException,
    ResourceNotFoundException,
    ServiceError,
    ThrottlingException,
    TLSVerificationError,
    TransportError,
    ValidationError,
)

if _typing.TYPE_CHECKING:
    from ._recorder import EventRecorder, RecorderClosedError, RecorderStateError, RecorderStats
    from .spool import MemorySpool, Spool, SpoolBatch, SpoolError, SpoolListener, SpoolStateError
    from .spool.sqlite import SqliteSpool

_LAZY: _typing.Final = {
    "EventRecorder": "._recorder",
    "RecorderClosedError": "._recorder",
    "RecorderStateError": "._recorder",
    "RecorderStats": "._recorder",
    "MemorySpool": ".spool",
    "Spool": ".spool",
    "SpoolBatch": ".spool",
    "SpoolError": ".spool",
    "SpoolListener": ".spool",
    "SpoolStateError": ".spool",
    "SqliteSpool": ".spool.sqlite",
}
"""Public names whose module loads on first use (the recorder, its engine and the spools; ``sqlite3``)."""


def __getattr__(name: str) -> _typing.Any:
    """The recorder's and the spools' names load on first use: ``import aiopersonalize_events`` stays light."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # looked up once: later reads are plain attribute reads
    return value


def __dir__() -> list[str]:
    """The module's names, the lazy ones included."""
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AccessDeniedException",
    "Action",
    "ActionInteraction",
    "BatchError",
    "BatchFailure",
    "BatchIncompleteError",
    "BatchResult",
    "ClientConfig",
    "ClientRateLimitError",
    "ClientStateError",
    "Clock",
    "ConnectTimeoutError",
    "ConnectionClosedError",
    "CredentialProvider",
    "Credentials",
    "DEFAULT_RATE",
    "EndpointConnectionError",
    "Event",
    "EventRecorder",
    "Fault",
    "InvalidInputException",
    "InvalidResponseError",
    "Item",
    "ManualClock",
    "MemorySpool",
    "MetricAttribution",
    "NoCredentialsError",
    "NoRegionError",
    "PersonalizeEventsClient",
    "PersonalizeEventsError",
    "PoolTimeoutError",
    "Properties",
    "PutActionInteractionsRequest",
    "PutActionsRequest",
    "PutEventsRequest",
    "PutItemsRequest",
    "PutUsersRequest",
    "ReadTimeoutError",
    "RecorderClosedError",
    "RecorderStateError",
    "RecorderStats",
    "RefreshingProvider",
    "ResourceInUseException",
    "ResourceNotFoundException",
    "ResponseMetadata",
    "ServiceError",
    "Spool",
    "SpoolBatch",
    "SpoolError",
    "SpoolListener",
    "SpoolStateError",
    "SqliteSpool",
    "TLSVerificationError",
    "ThrottlingException",
    "Timestamp",
    "TransportError",
    "User",
    "ValidationError",
    "__version__",
    "set_testing",
]
