"""aiopersonalize-events: an asyncio-native client for the Amazon Personalize Events API.

Stream interactions (``put_events``, ``put_action_interactions``) and catalog
records (``put_items``, ``put_users``, ``put_actions``) to Amazon Personalize
without blocking the event loop: validated shapes, SigV4 signing, retries
with a budget, batching helpers and a background ``EventRecorder``. The
emulator (``aiopersonalize_events.emulator``) and the command line load
lazily; OpenTelemetry traces and metrics (``aiopersonalize_events.otel``,
extra ``otel``) load only when imported, and are off until ``instrument()``.
"""

import typing as _typing

from ._batching import DEFAULT_RATE, BatchError, BatchFailure, BatchIncompleteError, BatchResult
from ._client import PersonalizeEventsClient, ResponseMetadata
from ._clock import Clock, ManualClock
from ._config import ClientConfig
from ._credentials import CredentialProvider, Credentials, RefreshingProvider
from ._recorder import EventRecorder, RecorderClosedError, RecorderStateError, RecorderStats
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
    TransportError,
    ValidationError,
)
from .spool import MemorySpool, Spool, SpoolBatch, SpoolError, SpoolListener, SpoolStateError

if _typing.TYPE_CHECKING:
    from .spool.sqlite import SqliteSpool


def __getattr__(name: str) -> _typing.Any:
    """``SqliteSpool`` loads on first use: ``import aiopersonalize_events`` does not import ``sqlite3``."""
    if name == "SqliteSpool":
        from .spool.sqlite import SqliteSpool

        return SqliteSpool
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "ThrottlingException",
    "Timestamp",
    "TransportError",
    "User",
    "ValidationError",
    "__version__",
    "set_testing",
]
