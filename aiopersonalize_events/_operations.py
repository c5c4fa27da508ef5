"""One descriptor per API call; the client, emulator, batching and CLI all read this table.

Adding an operation means one ``Operation`` here and one request shape in
``_shapes``: the client's ``_invoke``, the emulator's routes, the batching
helpers, the CLI sub-commands and the parametrised tests loop over
``OPERATIONS``.
"""

from __future__ import annotations

from typing import Any, Final

import attrs

from . import _limits as L
from . import _shapes as S
from ._naming import snake

__all__ = ["BY_NAME", "OPERATIONS", "Operation"]


@attrs.frozen
class Operation:
    """What the library knows of one API call.

    ``name`` is the service's spelling (``PutEvents``), ``path`` the HTTP path,
    ``request`` the request shape, ``record_field`` the request member holding
    the records (snake_case, e.g. ``event_list``; ``record_wire`` is its
    camelCase), ``record`` the record shape, ``resource_field`` the member
    naming the tracker or dataset, ``records_per_call`` the service's maximum,
    ``rate`` the service's default requests per second per dataset group
    (None when the batching helpers should not pace it), and
    ``record_floats`` the record members holding a float that a fast JSON
    encoder might write differently from the stdlib (checked before using it).
    """

    name: str
    path: str
    request: type[Any]
    record_field: str
    record_wire: str
    record: type[Any]
    resource_field: str
    resource_wire: str
    records_per_call: int = L.RECORDS_PER_CALL
    rate: float | None = None
    record_floats: tuple[str, ...] = ()

    @property
    def snake_name(self) -> str:
        """The Python method name, e.g. ``put_events``."""
        return snake(self.name)

    @property
    def cli_name(self) -> str:
        """The command line sub-command, e.g. ``put-events``."""
        return self.snake_name.replace("_", "-")


PUT_EVENTS: Final = Operation(
    name="PutEvents",
    path="/events",
    request=S.PutEventsRequest,
    record_field="event_list",
    record_wire="eventList",
    record=S.Event,
    resource_field="tracking_id",
    resource_wire="trackingId",
    record_floats=("event_value",),
)
PUT_ITEMS: Final = Operation(
    name="PutItems",
    path="/items",
    request=S.PutItemsRequest,
    record_field="items",
    record_wire="items",
    record=S.Item,
    resource_field="dataset_arn",
    resource_wire="datasetArn",
    rate=L.PUT_ITEMS_RATE,
)
PUT_USERS: Final = Operation(
    name="PutUsers",
    path="/users",
    request=S.PutUsersRequest,
    record_field="users",
    record_wire="users",
    record=S.User,
    resource_field="dataset_arn",
    resource_wire="datasetArn",
    rate=L.PUT_USERS_RATE,
)
PUT_ACTIONS: Final = Operation(
    name="PutActions",
    path="/actions",
    request=S.PutActionsRequest,
    record_field="actions",
    record_wire="actions",
    record=S.Action,
    resource_field="dataset_arn",
    resource_wire="datasetArn",
)
PUT_ACTION_INTERACTIONS: Final = Operation(
    name="PutActionInteractions",
    path="/action-interactions",
    request=S.PutActionInteractionsRequest,
    record_field="action_interactions",
    record_wire="actionInteractions",
    record=S.ActionInteraction,
    resource_field="tracking_id",
    resource_wire="trackingId",
)

OPERATIONS: Final = (PUT_EVENTS, PUT_ITEMS, PUT_USERS, PUT_ACTIONS, PUT_ACTION_INTERACTIONS)
"""Every operation of the API, in the order the README lists them."""

BY_NAME: Final = {op.name: op for op in OPERATIONS}
"""Operations by the service's name (``PutEvents``)."""
