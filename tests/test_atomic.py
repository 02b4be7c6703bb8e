"""Atomic outputs: complete under their final name, readable like any other file, or absent."""

from __future__ import annotations

import os
import time

import pytest

from listenerctl.atomic import atomic_file, partial_dir, remove_stale_partials, staged_dir


def test_atomic_file_publishes_a_readable_file(tmp_path):
    with atomic_file(tmp_path / "card.json", "w") as fh:
        fh.write("{}")
    assert (tmp_path / "card.json").read_text() == "{}"
    assert (tmp_path / "card.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_atomic_file_leaves_nothing_and_keeps_the_old_file_on_error(tmp_path):
    (tmp_path / "card.json").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "card.json", "w") as fh:
        fh.write("half")
        raise RuntimeError("interrupted")
    assert (tmp_path / "card.json").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["card.json"]


def test_staged_dir_publishes_a_readable_folder_or_nothing(tmp_path):
    with staged_dir(tmp_path / "out") as work:
        (work / "a.txt").write_text("a")
    assert (tmp_path / "out" / "a.txt").read_text() == "a"
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o755
    with pytest.raises(RuntimeError), staged_dir(tmp_path / "other") as work:
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_remove_stale_partials_takes_only_this_outputs_leftovers_from_before(tmp_path):
    final = tmp_path / "talk"
    stale, old, running = partial_dir(final), tmp_path / ".talk.4242.old", partial_dir(final)
    old.mkdir()
    other = partial_dir(tmp_path / "talk.x")  # another output whose name starts alike
    started = time.time()
    for path in (stale, old, other):
        os.utime(path, (started - 60, started - 60))
    os.utime(running, (started + 1, started + 1))  # still being written by a run that began after this one
    assert remove_stale_partials(final, started) == 2
    assert not stale.exists() and not old.exists() and running.exists() and other.exists()
