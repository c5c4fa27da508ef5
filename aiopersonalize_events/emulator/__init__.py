"""A local, faithful stand-in for the Amazon Personalize Events service.

``Emulator`` serves the five operations on loopback as the service answers
them: SigV4 signatures checked, every request validated against the
service's limits on its wire JSON (with its own checks, not the client's
shapes), the service's error codes, statuses, headers and JSON bodies, events
de-duplicated by ``eventId`` and dataset records upserted. ``Faults`` injects
throttling, server errors, dropped connections and latency; rate quotas are
optional. Use it from tests (``async with Emulator() as emu``, or the
``personalize_emulator`` pytest fixture), or from a shell with
``python -m aiopersonalize_events.emulator --port 8080``.

``IdentityEmulator`` stands in for the endpoints behind IAM Identity Center
(SSO) and ``aws login`` profiles (SSO portal ``GetRoleCredentials``, SSO OIDC
``CreateToken``, AWS Sign-In ``CreateOAuth2Token``), reached through
``AWS_ENDPOINT_URL_SSO``, ``AWS_ENDPOINT_URL_SSO_OIDC`` and ``AWS_ENDPOINT_URL_SIGNIN``.

Not imported by ``import aiopersonalize_events``; import this module to use it.
"""

from ._app import Emulator
from ._faults import Faults
from ._identity import IdentityEmulator, RoleGrant

__all__ = ["Emulator", "Faults", "IdentityEmulator", "RoleGrant"]
