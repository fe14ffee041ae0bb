"""Progress bars for long commands: shown on a terminal, silent everywhere else."""

from __future__ import annotations

from collections.abc import Iterable
from typing import IO, Any, TypeVar, cast

from django.core.management.base import OutputWrapper
from tqdm import tqdm

T = TypeVar("T")


def _stream(stream: IO[str] | OutputWrapper | None) -> IO[str] | None:
    # A command's OutputWrapper appends a newline to every write, which breaks tqdm's
    # in-place redraw: write to the stream it wraps.
    if isinstance(stream, OutputWrapper):
        return cast(IO[str], stream._out)
    return stream


def bar(
    iterable: Iterable[T] | None = None,
    *,
    stream: IO[str] | OutputWrapper | None,
    desc: str,
    total: float | None = None,
    **kwargs: Any,
) -> tqdm:
    """A tqdm bar on ``stream`` when it is a terminal, otherwise a disabled one."""
    out = _stream(stream)
    enabled = out is not None and hasattr(out, "isatty") and out.isatty()
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        file=out,
        disable=not enabled,
        leave=False,
        dynamic_ncols=True,
        **kwargs,
    )
