"""The folders of the ``files`` adapter: plain names, atomic writes, file stamps."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from adapters.contract import AdapterError


def file_stamp(info: os.stat_result) -> str:
    """Tells a file's versions apart: its size and modification time."""
    return f"{info.st_size}-{info.st_mtime_ns}"


def plain_name(name: Any) -> str:
    """Returns ``name`` if it names an entry of a folder, not a path; else raises."""
    if not isinstance(name, str) or name in {"", ".", ".."} or os.path.basename(name) != name:
        raise AdapterError(f"{name!r} is not a plain file name")
    return name


def write_atomically(folder: Path, name: str, fill: Callable[[IO[bytes]], Any]) -> Path:
    """Writes ``.<name>.tmp`` through ``fill``, fsyncs it and renames it to ``name``."""
    final, partial = folder / plain_name(name), folder / f".{name}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, final)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    directory = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return final


def usable_folder(path: Path) -> Path:
    """Returns ``path`` if it is a folder this process may write into; else raises."""
    if not path.is_dir():
        raise AdapterError(f"folder {str(path)!r} does not exist or is not a folder", "folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise AdapterError(f"folder {str(path)!r} is not writable by this process", "folder")
    return path
