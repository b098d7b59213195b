"""A full disk under the embedded store: the worker refuses or stops with one clear line, the alias keeps
serving, and the same command resumes once space is freed.

Each test mounts a small ext4 filesystem of its own (40 MiB, as in the report of issue 19; a loop mount)
and skips where it may not (not root, no loop device). Another process filling the disk is played by a filler file on the same mount.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.build import run
from ingest.errors import InsufficientSpace
from ingest.space import MIB, free_bytes
from search.stores import open_store
from tests.helpers import MINI_V11, ROOT

SIZE_MIB = 40


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 40 MiB ext4 filesystem (a loop mount of an image file) at tmp_path/disk, for this test only.

    ext4, not tmpfs: on tmpfs even reading a hole of the engine's writable maps allocates memory, so an
    embedded store there needs room for its sparse files' full size (search.stores.edge_files).
    """
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("mount", "umount", "mkfs.ext4")):
        pytest.skip("a loop-mounted filesystem needs root, mount(8) and mkfs.ext4; the full-disk cases run where "
                    "they can")
    image = tmp_path / "disk.img"
    with open(image, "wb") as f:
        f.truncate(SIZE_MIB * MIB)
    steps = (["mkfs.ext4", "-q", "-F", "-m", "0", str(image)], ["mount", "-o", "loop", str(image), str(mnt)])
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot make a small filesystem here ({' '.join(cmd[:2])}): {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def fill(disk: Path, leave: int) -> Path:
    """Fill the filesystem of ``disk`` until ``leave`` bytes are free (a filler file, as another process)."""
    filler = disk / "filler"
    with open(filler, "ab") as f:
        block = b"\0" * MIB
        while free_bytes(disk) > leave + MIB:
            f.write(block)
            f.flush()
        rest = free_bytes(disk) - leave
        if rest > 0:
            f.write(b"\0" * rest)
    return filler


def _served(settings) -> tuple[str | None, list[str], int]:
    store = open_store(settings)
    try:
        served = store.resolve_alias(settings.collection)
        return served, sorted(store.list_collections()), store.count(settings.collection) if served else 0
    finally:
        store.close()


def _settings(disk: Path, encoder, **kw):
    from tests.conftest import make_settings

    s = make_settings(disk, "edge", model=encoder.model_name, **kw)
    return s.model_copy(update={"lock_dir": disk.parent / "locks"})  # the locks live off the small disk


def test_a_build_the_disk_cannot_hold_is_refused_before_writing(small_disk, encoder):
    settings = _settings(small_disk, encoder)
    first = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    before = _served(settings)
    filler = fill(small_disk, leave=2 * MIB)
    with pytest.raises(InsufficientSpace) as e:
        run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    msg = str(e.value)
    assert "not enough disk space for the new collection" in msg and "needs about" in msg
    assert " MiB free on the filesystem of " in msg and str(small_disk) in msg and "\n" not in msg
    assert _served(settings) == before  # nothing written, not even an empty collection
    filler.unlink()
    s = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    assert s.previous_collection == first.collection and s.points_written == {"en": 20, "de": 20}


def test_the_disk_filling_up_mid_ingest_stops_with_the_alias_untouched_and_resumes(small_disk, encoder):
    settings = _settings(small_disk, encoder)
    first = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    filler: list[Path] = []

    def another_process_fills_the_disk(written: int) -> None:
        if not filler:
            filler.append(fill(small_disk, leave=2 * MIB))

    with pytest.raises(InsufficientSpace, match="to go on writing the new collection") as e:
        run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False,
            after_batch=another_process_fills_the_disk)
    assert isinstance(e.value, OSError) and "MiB free on the filesystem of" in str(e.value)
    served, names, count = _served(settings)
    assert served == first.collection and count == 20
    (partial,) = [n for n in names if n != first.collection]
    filler[0].unlink()
    s = run(settings, [MINI_V11], ["en", "de"], encoder=encoder, progress=False)
    assert s.collection == partial and s.resumed_points >= 8 and s.encoded + s.reused + s.resumed_points == 40


# Through a real `python -m ingest` process, with the worker's checks off, as when another process takes the
# last space between a check and the write: the engine's own write fails (ENOSPC, or SIGBUS in a
# memory-mapped write); either way one line, exit 2, the alias untouched, and the rerun resumes.
WORKER = r"""
import sys
from pathlib import Path
import ingest.space as space
from search.stores.edge import EdgeStore

disk = Path(sys.argv[1])
space.SpaceGuard.before_write = lambda self, needed, what="": None   # the checks are raced
real = EdgeStore.upsert
calls = [0]

def upsert(self, name, points):
    calls[0] += 1
    if calls[0] == 2:  # after the first write, another process takes every byte left
        with open(disk / "filler", "ab") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
    return real(self, name, points)

EdgeStore.upsert = upsert
from ingest.cli import main
raise SystemExit(main(sys.argv[2:]))
"""


def test_a_raced_full_disk_through_the_cli_is_one_line_and_the_rerun_resumes(small_disk, encoder, minilm_path,
                                                                              tmp_path):
    settings = _settings(small_disk, encoder)
    first = run(settings, [MINI_V11], ["en"], encoder=encoder, progress=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("ESCO_")}, "PYTHONPATH": str(ROOT),
           "HF_HUB_OFFLINE": "1", "ESCO_QDRANT_PATH": str(settings.qdrant_path),
           "ESCO_LOCK_DIR": str(settings.lock_dir), "ESCO_MODEL": minilm_path, "ESCO_BACKEND": "torch",
           "ESCO_PRECISION": "fp32", "ESCO_BATCH_SIZE": "8", "ESCO_UPSERT_BATCH_SIZE": "8"}
    args = ["--release", str(MINI_V11), "--language", "en", "--language", "de", "--quiet"]
    proc = subprocess.run([sys.executable, "-c", WORKER, str(small_disk), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Bus error" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("esco-ingest: error: ") and str(small_disk) in last, proc.stderr
    assert "run the same command again" in last
    assert ("No space left on device" in last) or ("SIGBUS" in last), last
    (small_disk / "filler").unlink()
    served, names, count = _served(settings)
    assert served == first.collection and count == 20
    rerun = subprocess.run([sys.executable, "-m", "ingest", *args[:-1], "--json"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    s = json.loads(rerun.stdout)
    assert s["collection"] in names and s["resumed_points"] >= 8
    assert _served(settings)[0] == s["collection"] and _served(settings)[2] == 40
