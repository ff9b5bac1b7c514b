"""`doppel reply --out` on a disk that fills up: the answer's file is there whole or not at all. The disk is made
to fill by a file-size limit (RLIMIT_FSIZE) in a child process, so the write really fails part-way, as on a full
disk; the same limit shows what a plain write leaves behind."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 4096
CHILD = """
import json, resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
target, how = Path(sys.argv[1]), sys.argv[2]
data = b"OggS" + bytes(20_000)
error = ""
try:
    if how == "plain":
        target.write_bytes(data)
    else:
        from bot.cli import _write_whole
        _write_whole(target, data, "--out")
except Exception as exc:
    error = str(exc)
print(json.dumps({"error": error}))
"""


def write_past_the_limit(target: Path, how: str) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD, str(target), how, str(LIMIT)], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])["error"]


def test_a_reply_that_does_not_fit_leaves_no_truncated_file(tmp_path):
    plain = tmp_path / "plain.ogg"
    write_past_the_limit(plain, "plain")
    assert plain.exists() and plain.stat().st_size == LIMIT  # what a plain write leaves: a truncated answer

    reply = tmp_path / "reply.ogg"
    error = write_past_the_limit(reply, "whole")
    assert "--out" in error and "cannot be written" in error and "nothing was stored" in error, error
    assert list(tmp_path.iterdir()) == [plain]  # neither the answer nor its part-written file


def test_a_reply_that_does_not_fit_keeps_the_earlier_file(tmp_path):
    reply = tmp_path / "reply.ogg"
    reply.write_bytes(b"the answer before")
    write_past_the_limit(reply, "whole")
    assert reply.read_bytes() == b"the answer before"
    assert list(tmp_path.iterdir()) == [reply]
