"""Times on the wire: RFC 3339 in UTC with milliseconds and a `Z` (CONTRACT, intro)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_ms(wall_ms: int) -> str:
    """`2025-08-11T00:09:30.120Z` for the wall-clock time ``wall_ms`` (ms since the
    Unix epoch)."""
    moment = _EPOCH + timedelta(milliseconds=int(wall_ms))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
