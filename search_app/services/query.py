"""What every backend receives as query text: normalized, bounded, printable.

Raw user input may hold anything a URL or a JSON body can carry: NUL bytes (PostgreSQL text
cannot store them), lone surrogates (not encodable as UTF-8), bidirectional marks and
zero-width characters (invisible, they split words), compatibility forms (full-width
letters, ligatures), runs of whitespace, and any length. :func:`normalize_query` makes one
canonical string of it; backends and the analytics log see only that.
"""

from __future__ import annotations

import unicodedata

# Longest query text searched and logged, after normalization. Longer input is cut (at the
# last space before the limit when there is one), never refused.
MAX_QUERY_CHARS = 200

# Control (Cc), format (Cf: bidi marks, zero-width joiners, BOM), surrogate (Cs), private
# use (Co) and unassigned (Cn) code points carry no searchable text.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


def normalize_query(raw: str, *, max_chars: int = MAX_QUERY_CHARS) -> str:
    """NFKC, invisible and control characters dropped (whitespace becomes a space),
    whitespace collapsed and trimmed, at most ``max_chars`` characters. Case is kept."""
    kept = []
    # Input far beyond the limit is not even looked at (a huge query string costs nothing).
    for char in raw[: max_chars * 10]:
        if char.isspace():
            kept.append(" ")
        elif unicodedata.category(char) not in _DROPPED_CATEGORIES:
            kept.append(char)
    text = " ".join(unicodedata.normalize("NFKC", "".join(kept)).split())
    if len(text) > max_chars:
        cut = text[:max_chars]
        space = cut.rfind(" ")
        text = (cut[:space] if space > max_chars // 2 else cut).rstrip()
    return text


def analytics_key(text: str) -> str:
    """The form a query is counted under in analytics: normalized, case-folded."""
    return normalize_query(text).casefold()[:MAX_QUERY_CHARS]
