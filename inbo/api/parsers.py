"""The API's one request parser: JSON, bounded in size and in nesting before it is parsed.

``json.loads`` recurses once per level of nesting, so a body of a few kilobytes nested a
hundred thousand levels deep ends in ``RecursionError`` (a 500) after burning the stack.
The depth is measured first, on the bracket structure alone, with regular expressions and
``str.replace`` passes (C loops), never a Python loop over the characters of the body.
"""

from __future__ import annotations

import codecs
from collections.abc import Mapping
from itertools import accumulate
from typing import IO, Any

from django.conf import settings
from rest_framework import exceptions, parsers, status
from rest_framework.utils import json


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"
    default_detail = "The request body is too large."

    def __init__(self, max_bytes: int | None) -> None:
        super().__init__()
        self.details = {"max_bytes": max_bytes} if max_bytes is not None else {}


class NestingTooDeep(exceptions.ParseError):
    default_code = "nesting_too_deep"

    def __init__(self, max_depth: int) -> None:
        super().__init__(f"The JSON body is nested deeper than {max_depth} levels.")
        self.details = {"max_depth": max_depth}


# Only the structure matters: quotes and brackets, objects counted like arrays.
_STRUCTURE = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'[]{}"')
# The signed step of each bracket, to sum depths in C (a memoryview of format "b").
_STEP = bytes.maketrans(b"[]", b"\x01\xff")


def _structure(body: bytes) -> bytes:
    """The brackets of a UTF-8 JSON body that lie outside strings, ``{}`` written as ``[]``."""
    # Escaped backslashes first, then escaped quotes: every quote left delimits a string.
    body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    structure = body.translate(_STRUCTURE, _NOT_STRUCTURE)
    # A string without brackets in it is now "" (most of them): removing two adjacent quotes
    # never moves anything else in or out of a string.
    structure = structure.replace(b'""', b"")
    if b'"' in structure:
        # Even parts lie outside strings (an unterminated last string runs to the end).
        structure = b"".join(structure.split(b'"')[::2])
    return structure


def nesting_exceeds(body: bytes, limit: int) -> bool:
    """Whether the UTF-8 JSON ``body`` nests arrays/objects deeper than ``limit`` levels.

    Exact for well-formed JSON; malformed JSON (rejected with a 400 anyway) may be reported
    one level deeper than it is. Cost is a few C passes over the body plus, only for bodies
    with more than ``limit`` brackets and no obvious answer, one C-level sum over the
    brackets that are not leaves.
    """
    structure = _structure(body)
    if structure.count(b"[") <= limit:
        return False
    if b"[" * (limit + 1) in structure:  # the usual attack: one long run of openings
        return True
    # Drop every innermost pair: flat bodies (lists of objects) collapse to almost nothing,
    # and the deepest level of what is left is exactly one less.
    structure = structure.replace(b"[]", b"")
    if structure.count(b"[") < limit:
        return False
    if b"[" * limit in structure:
        return True
    steps = memoryview(structure.translate(_STEP)).cast("b")
    return max(accumulate(steps), default=0) + 1 > limit


def _read_bounded(stream: IO[bytes], max_bytes: int | None) -> bytes:
    if max_bytes is None:
        return stream.read()
    body = stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise PayloadTooLarge(max_bytes)
    return body


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser (strict constants, the request's charset) with size and depth bounds.

    The size bound is Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``, applied here too so that it
    holds whatever stream DRF hands over. The depth bound is ``API_JSON_MAX_DEPTH``.
    """

    def parse(
        self,
        stream: IO[bytes],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        # DRF's charset rule (text codecs only); its stubs predate the helper.
        encoding = parsers.get_encoding(parser_context or {})  # type: ignore[attr-defined]
        body = _read_bounded(stream, settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
        try:
            text = body.decode(encoding)
        except UnicodeDecodeError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
        if codecs.lookup(encoding).name != "utf-8":
            body = text.encode()  # the scan reads UTF-8, where a quote is always a quote
        max_depth = settings.API_JSON_MAX_DEPTH
        if nesting_exceeds(body, max_depth):
            raise NestingTooDeep(max_depth)
        parse_constant = json.strict_constant if self.strict else None
        try:
            return json.loads(text, parse_constant=parse_constant)
        except ValueError as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from exc
