"""--result is written atomically to a file, and into a device or pipe in place."""

from __future__ import annotations

import json
import os
import stat
import threading

from jenkinsctl.deploy import write_result


def test_a_result_file_is_replaced_whole(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("old")
    write_result(str(path), {"digest": "sha256:1"})
    assert json.loads(path.read_text()) == {"digest": "sha256:1"}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]   # no temporary left


def test_a_pipe_or_device_is_written_into_never_replaced(tmp_path):
    """`--result /dev/null` once replaced /dev/null with a regular file (a
    rename over it, as root).  A FIFO stands in for the device here."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    write_result(str(fifo), {"digest": "sha256:2"})
    reader.join(timeout=10)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert json.loads(got[0]) == {"digest": "sha256:2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]
