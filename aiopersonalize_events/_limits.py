"""The service's numbers, in one table.

Every limit here comes from the Personalize Events service model (API version
2018-03-22) and its published quotas. Shapes, the emulator and the batching
helpers all read these constants; nothing else in the package spells a limit.
"""

from __future__ import annotations

import re
from typing import Final

ID_MAX: Final = 256
"""Maximum length of every plain id or string member (trackingId, sessionId, ...)."""

ARN_MAX: Final = 256
ARN_PATTERN: Final = re.compile(r"arn:([a-z\d-]+):personalize:.*:.*:.+")
"""The service's pattern for ``datasetArn`` (a search, as the service applies it)."""

RECOMMENDATION_ID_MAX: Final = 40

IMPRESSION_MAX_ENTRIES: Final = 25

ATTRIBUTION_SOURCE_MAX: Final = 1024
ATTRIBUTION_SOURCE_PATTERN: Final = re.compile(r"^[\x20-\x7E]*[\x21-\x7E]+[\x20-\x7E]*$")

EVENT_PROPERTIES_MAX: Final = 1024
ACTION_INTERACTION_PROPERTIES_MAX: Final = 1024
ITEM_PROPERTIES_MAX: Final = 32000
ACTION_PROPERTIES_MAX: Final = 32000
USER_PROPERTIES_MAX: Final = 24000

PROPERTIES_MAX_DEPTH: Final = 100
"""Deepest nesting of objects and arrays in ``properties`` JSON.

Not from the service model: Python's json gives up at a depth that depends on
the caller's stack, so shapes and emulator both refuse deeper JSON at this
fixed depth, far below that and far beyond any real properties object.
"""

RESERVED_PROPERTY_KEYS: Final = frozenset(
    {"userid", "sessionid", "eventtype", "timestamp", "recommendationid", "impression"}
)
"""Keys refused (in any case) in Event and ActionInteraction ``properties``, lowercased."""

RECORDS_PER_CALL: Final = 10
"""Records per call, for every operation."""

EVENT_MAX_BYTES: Final = 10 * 1024
"""One event's size on the wire (its compact JSON, UTF-8)."""

PUT_EVENTS_RATE: Final = 1000.0
"""PutEvents requests per second per dataset group (the service's default quota)."""

PUT_ITEMS_RATE: Final = 10.0
PUT_USERS_RATE: Final = 10.0
"""PutItems / PutUsers requests per second per dataset group."""
