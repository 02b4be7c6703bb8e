"""Atomic writes: outputs appear under their final name complete or not at all."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_file(path: str | Path, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success rename it to ``path`` (readable by all, like any
    other output: mkstemp makes it private), on error remove it."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, 0o644)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def partial_dir(final: Path) -> Path:
    """A fresh hidden working folder beside ``final`` whose name marks it unfinished."""
    final.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    work.chmod(0o755)  # mkdtemp makes it private; the published folder should read like any other
    return work


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A `partial_dir` beside ``final`` to fill: published as ``final`` when the block ends, removed (with
    nothing left under ``final``'s name) when it raises."""
    work = partial_dir(final)
    try:
        yield work
        publish_dir(work, final)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def publish_dir(work: Path, final: Path) -> None:
    """Move the finished folder ``work`` to ``final``. An older ``final`` is first renamed aside, then ``work``
    takes its name and the old one is deleted: two renames, so for a moment neither exists under ``final``
    (a reader then sees no folder, never a partial one)."""
    if final.exists():
        stale = final.with_name(f".{final.name}.{os.getpid()}.old")
        os.replace(final, stale)
        os.replace(work, final)
        shutil.rmtree(stale, ignore_errors=True)
    else:
        os.replace(work, final)


def remove_stale_partials(final: Path, older_than: float) -> int:
    """Delete the working folders an interrupted run left beside ``final`` (`partial_dir`'s
    ``.NAME.XXXXXXXX.partial`` and `publish_dir`'s ``.NAME.PID.old``) last modified before ``older_than``
    (a `time.time()`), so a run still writing one is left alone; returns how many."""
    pattern = re.compile(rf"\.{re.escape(final.name)}\.(?:[a-z0-9_]{{8}}\.partial|\d+\.old)")
    stale = [p for p in final.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir()
             and p.stat().st_mtime < older_than] if final.parent.is_dir() else []
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    return len(stale)
