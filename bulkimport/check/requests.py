"""How long the GET call of a record would be, as ``run`` sends it, without the password.

With ``--method get`` a record travels in the request line, and a line longer than the
server takes (``--max-get-bytes``: 32 KiB for the vendor's nginx) is refused before it is
sent: its row is rejected, with the advice to send by POST. ``check`` counts the line the
same way (``protocol.get_line_bytes``) from the same settings, with the password it does
not know counted as ``PASSWORD_ALLOWANCE`` bytes, so that a row it calls clean is a row
``run`` sends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from bulkimport.protocol import (
    DEFAULT_MAX_GET_BYTES,
    ENDPOINT_PATH,
    ImportParams,
    PasswordType,
    encode_params,
    get_line_bytes,
)
from bulkimport.settings import Method, Settings

#: The bytes counted for the password, which ``check`` does not know: an MD5 (32 hex
#: digits), or a plain password of up to 32 characters that need no encoding.
PASSWORD_ALLOWANCE = 32
#: The URL counted when none is given.
PLACEHOLDER_URL = f"http://server.example{ENDPOINT_PATH}"


@dataclass(frozen=True)
class GetLimit:
    """The request line of a GET for any record: ``line_bytes(record)``, held to
    ``max_bytes``. ``params`` carry no password (``PASSWORD_ALLOWANCE`` stands for it)."""

    params: ImportParams = field(
        default_factory=lambda: ImportParams(org="", user="", password="", campaign="")
    )
    url: str = PLACEHOLDER_URL
    max_bytes: int = DEFAULT_MAX_GET_BYTES
    _encode: Callable[[str], str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_encode", encode_params(self.params))

    def line_bytes(self, record: str) -> int:
        """The request line's bytes, its CRLF included, the password counted as
        ``PASSWORD_ALLOWANCE``."""
        return get_line_bytes(self.url, self._encode(record)) + PASSWORD_ALLOWANCE

    @classmethod
    def of(cls, settings: Settings) -> GetLimit | None:
        """The limit ``run`` holds records to with these settings; None with POST (the
        record goes in the body, which the server takes up to megabytes)."""
        if settings.send.method is not Method.GET:
            return None
        # No password, and none of its MD5 either: the allowance stands for it.
        target = dataclasses.replace(settings.target, password="", pwdtype=PasswordType.PLAINTEXT)
        return cls(
            params=target.import_params(),
            url=target.url or PLACEHOLDER_URL,
            max_bytes=settings.send.max_get_bytes,
        )
