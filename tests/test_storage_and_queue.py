"""Storage paths stay inside the root; the web side enqueues by name without task modules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app import storage

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_write_and_resolve_inside_the_root() -> None:
    path = storage.write_bytes("images/abc/0.png", b"png bytes")
    assert path == storage.storage_root() / "images" / "abc" / "0.png"
    assert storage.resolve("images/abc/0.png").read_bytes() == b"png bytes"
    storage.write_bytes("images/abc/0.png", b"again")  # replaced, not appended
    assert path.read_bytes() == b"again"


@pytest.mark.parametrize("bad", ["../etc/passwd", "/etc/passwd", "a/../../b", ""])
def test_paths_escaping_the_root_are_refused(bad: str) -> None:
    with pytest.raises(storage.UnsafePath):
        storage.resolve(bad)


def test_enqueue_by_name_does_not_import_task_modules(clean_state) -> None:
    script = (
        "import sys\n"
        "from app.queue import enqueue\n"
        "print(enqueue('system.ping', 'from the web'))\n"
        "print('torch' in sys.modules, 'workers.system' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    task_id, loaded = result.stdout.strip().splitlines()[-2:]
    assert len(task_id) == 36 and loaded == "False False"


def test_filesystem_broker_message_is_invisible_until_completely_written(tmp_path, monkeypatch) -> None:
    """A consumer polling mid-write must not take a half-written (empty) message: kombu's
    own filesystem transport lost a job that way."""
    import os
    from queue import Empty

    from kombu import Connection

    from workers import filesystem_broker

    filesystem_broker.register()
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path), "store_processed": False}
    with Connection("filesystem://", transport_options=options) as connection:
        channel = connection.default_channel
        assert isinstance(channel, filesystem_broker.AtomicChannel)
        seen_mid_write = []
        real_replace = os.replace

        def replace_after_a_poll(source, target):
            try:  # a consumer polls while the message is written but not yet renamed
                seen_mid_write.append(channel._get("inference"))
            except Empty:
                seen_mid_write.append(None)
            real_replace(source, target)

        monkeypatch.setattr(filesystem_broker.os, "replace", replace_after_a_poll)
        channel._put("inference", {"body": "job-1"})
        assert seen_mid_write == [None]
        assert channel._get("inference") == {"body": "job-1"}
        assert os.listdir(tmp_path) == []
