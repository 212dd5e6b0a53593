"""Event categories: the unit clients subscribe to and filter by."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class SSEEventCategory(StrEnum):
    """The six families of events a client can subscribe to."""

    DATA_SYNC = "data_sync"
    PROVIDER = "provider"
    AI = "ai"
    IMPORT = "import"
    PORTFOLIO = "portfolio"
    SECURITY = "security"


VALID_CATEGORIES: tuple[str, ...] = tuple(c.value for c in SSEEventCategory)


def validate_categories(categories: Iterable[str] | None) -> list[SSEEventCategory]:
    """Turn query-string category names into enum values, failing loudly on typos.

    The ``ValueError`` names every invalid name and lists the valid ones; its message starts
    ``Invalid category`` as the seed's does.

    ``None`` means "no filter" and gives ``[]``. Duplicates are dropped, order is kept.
    """
    if categories is None:
        return []
    if isinstance(categories, str):
        raise ValueError(
            f"Invalid category list {categories[:80]!r}: give a list of names, not one string; "
            f"valid categories are: {', '.join(VALID_CATEGORIES)}"
        )
    result: list[SSEEventCategory] = []
    invalid: list[str] = []
    for raw in categories:
        try:
            category = SSEEventCategory(raw)
        except ValueError:
            invalid.append(repr(raw))
            continue
        if category not in result:
            result.append(category)
    if invalid:
        # "Invalid category" starts the message in every case: the seed's callers match it.
        raise ValueError(
            f"Invalid category {', '.join(invalid)}; "
            f"valid categories are: {', '.join(VALID_CATEGORIES)}"
        )
    return result


def parse_category_list(values: Iterable[str]) -> list[SSEEventCategory]:
    """Accept repeated and comma-separated forms (``?categories=a,b&categories=c``)."""
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return validate_categories(names)
