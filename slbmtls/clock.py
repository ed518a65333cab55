"""The one clock read: today's UTC date, for diagnostics and for refusing future dates.

Nothing the program declares depends on it. SLB_MTLS_TODAY=YYYY-MM-DD pins it (tests, reproducing a
warning)."""

from __future__ import annotations

import datetime as dt
import os

PIN_VARIABLE = "SLB_MTLS_TODAY"


class ClockError(Exception):
    """SLB_MTLS_TODAY is set but is not a date."""


def today() -> dt.date:
    pinned = os.environ.get(PIN_VARIABLE)
    if not pinned:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(pinned)
    except ValueError:
        raise ClockError(f"{PIN_VARIABLE}={pinned[:40]!r}: expected a date YYYY-MM-DD, or leave it unset") from None
