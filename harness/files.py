"""Reading the user's files: every way a path can be wrong becomes one line naming it.

Missing, a directory where a file belongs (or the reverse), not UTF-8, a `.gz` that is not
gzip or is cut short: each is a `UserError` (exit 2) of the caller's class, never an
OSError traceback. Text is decoded line by line so a bad byte is reported at its line.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Iterator, Union

from harness.errors import UserError

PathLike = Union[str, Path]


def check_file(path: PathLike, what: str, error: type[UserError] = UserError) -> Path:
    """`path` as an existing regular file, else `error` saying what it is instead."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{p}: {what} is a directory, expected a file")
    if not p.exists():
        raise error(f"{p}: {what} not found")
    if not p.is_file():
        raise error(f"{p}: {what} is not a regular file")
    return p


def check_writable_dir(path: PathLike, what: str, error: type[UserError] = UserError) -> Path:
    """A directory that will be created (or exists): nothing on its way may be a file."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists():
            if not q.is_dir():
                raise error(f"{q}: is a file, but {what} {p} needs it to be a directory")
            break
    return p


def check_output_file(path: PathLike, what: str, error: type[UserError] = UserError) -> Path:
    """A file about to be written: not a directory, and its parent not a file."""
    p = Path(path)
    if p.is_dir():
        raise error(f"{p}: {what} is a directory: give a file name")
    check_writable_dir(p.parent, f"the folder of {what}", error)
    return p


def _not_utf8(p: Path, lineno: int, e: UnicodeDecodeError) -> str:
    bad = e.object[e.start:e.start + 1].hex()
    return f"{p}:{lineno}: not UTF-8 text (byte 0x{bad} at column {e.start + 1}): save the file as UTF-8"


def read_text(path: PathLike, what: str, error: type[UserError] = UserError) -> str:
    """The whole file as text (gzip-decompressed when it ends in .gz)."""
    return "".join(iter_lines(path, what, error))


def iter_lines(path: PathLike, what: str, error: type[UserError] = UserError) -> Iterator[str]:
    """The file's lines, decoded one by one; `lineno` in every error is the bad line's."""
    p = check_file(path, what, error)
    opener = gzip.open if p.suffix == ".gz" else open
    lineno = 0
    try:
        with opener(p, "rb") as f:
            for lineno, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
                except UnicodeDecodeError as e:
                    raise error(_not_utf8(p, lineno, e)) from None
                yield line[:-2] + "\n" if line.endswith("\r\n") else line   # as text mode reads it
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise error(f"{p}: corrupt or truncated gzip file after line {lineno} ({e}): re-create it") from None
    except PermissionError:
        raise error(f"{p}: {what} is not readable (permission denied)") from None
