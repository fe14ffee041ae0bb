"""Where and when the reader is (issue 13, FEAT-003/004): their time zone, place and language.

The profile the reader edits (``ReaderProfile``) wins; without a country there, the place a
trusted proxy vouched for (``experience_app.api.place``) stands in; without either, no place
(the place signals are absent). A reader without a profile reads in UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from django.db import connections

from experience_app.models import ReaderProfile
from experience_app.time_place import Place, hour_of_week, valid_country, valid_region, zone
from inbo.replicas import read_alias


@dataclass(frozen=True, slots=True)
class ReaderContext:
    tz: ZoneInfo
    place: Place | None = None
    language: str = ""

    def local_how(self, at: datetime) -> int:
        return hour_of_week(at, self.tz)

    def stamp(self, at: datetime) -> dict[str, object]:
        """What an event at ``at`` carries in its context for the time and place counters."""
        stamp: dict[str, object] = {"local_how": self.local_how(at)}
        if self.place is not None:
            stamp["country"] = self.place.country
            if self.place.region:
                stamp["region"] = self.place.region
        return stamp


# Plain SQL (on the connection the router would pick): every ingested batch and every
# feed build reads it, and the ORM's compiling cost more than the query.
_PROFILE = (
    f"SELECT timezone, country, region, language FROM {ReaderProfile._meta.db_table} "
    "WHERE user_id = %s"
)


def reader_context(user_id: int, *, proxy_place: Place | None = None) -> ReaderContext:
    """The reader's time zone, place and language: one query."""
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(_PROFILE, [user_id])
        row = cursor.fetchone()
    if row is None:
        return ReaderContext(zone("UTC"), proxy_place, "")
    tz_name, country, region, language = row
    code = valid_country(country)
    place = Place(code, valid_region(region)) if code else proxy_place
    return ReaderContext(zone(tz_name), place, language or "")
