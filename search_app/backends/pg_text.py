"""Query text to PostgreSQL ``tsquery``, without ever putting user text into SQL.

The text (already normalized, ``services.query``) is split in two: everything but the last
word goes to ``websearch_to_tsquery`` (quoted phrases, ``-word``, ``or``; it accepts any
input without a syntax error), and the last word, while it is still being typed, is
matched as a prefix through ``to_tsquery`` in both configurations. That prefix reaches
``to_tsquery`` as a bound parameter of the form ``'word':*`` where ``word`` holds only word
characters (``\\w``: no quote, backslash or operator can appear), so it parses whatever it
is. Words the index does not know are candidates for typo correction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

WORD = re.compile(r"\w+")
NON_WORD = re.compile(r"\W+")
# Shortest unknown word worth correcting: shorter words have too few trigrams to compare.
MIN_CORRECTED_CHARS = 3


@dataclass(frozen=True, slots=True)
class Word:
    """A word of the query: its span in the text, and whether it is matched as a prefix."""

    start: int
    end: int
    text: str
    prefix: bool


@dataclass(frozen=True, slots=True)
class ParsedText:
    text: str
    web: str  # for websearch_to_tsquery
    prefix: str | None  # the last word, matched as a prefix
    joiner: str  # how the prefix joins the rest: "&&" (and) or "||" (after "or")


def _negated(text: str, start: int) -> bool:
    return start > 0 and text[start - 1] == "-" and (start == 1 or text[start - 2] == " ")


def parse(text: str) -> ParsedText:
    """Split ``text`` into its websearch part and the prefix word being typed, if any."""
    words = list(WORD.finditer(text))
    last = words[-1] if words else None
    if (
        last is None
        or last.end() != len(text)  # ends with punctuation or a closing quote: complete
        or text.count('"') % 2 == 1  # inside an open phrase
        or _negated(text, last.start())
    ):
        return ParsedText(text=text, web=text, prefix=None, joiner="&&")
    rest = text[: last.start()]
    if rest and rest[-1] not in ' "':
        # The word ends a compound ("hard-to-g", "o'rei"): its other parts become plain
        # words (websearch would read "hard-to-" as a phrase with a dangling part). A
        # negated compound is complete: no prefix.
        head, _, tail = rest.rpartition(" ")
        lead = '"' if tail.startswith('"') else ""
        if tail.startswith("-"):
            return ParsedText(text=text, web=text, prefix=None, joiner="&&")
        rest = f"{head} {lead}{NON_WORD.sub(' ', tail[len(lead) :])}"
    rest = rest.rstrip()
    joiner = "&&"
    if rest.casefold() == "or" or rest.casefold().endswith(" or"):
        rest, joiner = rest[:-2].rstrip(), "||"
    return ParsedText(text=text, web=rest, prefix=last.group(), joiner=joiner)


def correctable_words(parsed: ParsedText) -> list[Word]:
    """Words that typo correction may replace: not negated, not the ``or`` operator, no
    digits or underscores, at least three characters."""
    text = parsed.text
    found = []
    for match in WORD.finditer(text):
        word = match.group()
        if (
            len(word) < MIN_CORRECTED_CHARS
            or word.casefold() == "or"
            or any(c.isdigit() or c == "_" for c in word)
            or _negated(text, match.start())
        ):
            continue
        prefix = parsed.prefix is not None and match.end() == len(text)
        found.append(Word(match.start(), match.end(), word, prefix))
    return found


def replace_words(text: str, replacements: dict[Word, str]) -> str:
    """``text`` with each word replaced (spans refer to ``text``)."""
    out, cursor = [], 0
    for word in sorted(replacements, key=lambda w: w.start):
        out.append(text[cursor : word.start])
        out.append(replacements[word])
        cursor = word.end
    out.append(text[cursor:])
    return "".join(out)


def tsquery_sql(parsed: ParsedText) -> tuple[str, list[str]]:
    """SQL for the query's ``tsquery`` and its parameters (all user text is a parameter)."""
    web = "websearch_to_tsquery('inbo_search', %s)"
    if parsed.prefix is None:
        return web, [parsed.web]
    term = f"'{parsed.prefix}':*"
    # Stemmed and as written; once when they are the same lexeme (most words), so that
    # each matching row is not tested twice.
    prefix = (
        "(SELECT CASE WHEN s = w THEN s ELSE s || w END FROM (SELECT "
        "to_tsquery('inbo_search', %s) AS s, to_tsquery('inbo_prefix', %s) AS w) AS t)"
    )
    return f"({web} {parsed.joiner} {prefix})", [parsed.web, term, term]
