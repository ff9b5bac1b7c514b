"""What the command line writes: `reply --video-out`, `jobs -v` as the README spells it."""
from __future__ import annotations

import io

import pytest

from bot.cli import build_parser
from tests.test_startup_errors import doppel


def test_jobs_verbose_is_accepted_after_the_command_too():
    parse = build_parser().parse_args
    assert parse(["jobs", "-v"]).verbose and parse(["-v", "jobs"]).verbose
    assert not parse(["jobs"]).verbose


@pytest.mark.slow
def test_reply_writes_the_talking_head_video_next_to_the_voice(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from adapters.video import read_info
    from geneface.testclip import portrait

    framed, _ = portrait(256)
    photo = tmp_path / "anna.png"
    buffer = io.BytesIO()
    Image.fromarray(framed).save(buffer, format="PNG")
    photo.write_bytes(buffer.getvalue())
    code, err = doppel(monkeypatch, capsys, tmp_path, "avatars", "add-photo", "anna", str(photo))
    assert code == 0, err
    from bot.cli import main

    with monkeypatch.context() as patch:
        patch.setenv("DOPPEL_DATA_DIR", str(tmp_path / "var"))
        patch.setenv("DOPPEL_AVATAR", "anna")
        patch.chdir(tmp_path)
        capsys.readouterr()
        code = main(["reply", "--text", "Hello there.", "--out", "out/reply.ogg", "--video-out", "out/reply.mp4"])
        printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "video:    out/reply.mp4" in printed.out
    info = read_info((tmp_path / "out" / "reply.mp4").read_bytes())
    assert info.seconds > 0.3 and info.has_audio
