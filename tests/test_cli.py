"""The command line as a person uses it."""
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # each test starts doppel, which loads its models


def doppel(args, tmp_path, stdin=None, timeout=300):
    env = {**os.environ, "DOPPEL_DATA_DIR": str(tmp_path / "var")}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=timeout)


def test_db_upgrade_twice(tmp_path):
    first = doppel(["db", "upgrade"], tmp_path)
    second = doppel(["db", "upgrade"], tmp_path)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert "revision 0" in first.stdout and first.stdout.strip().split()[-1] == second.stdout.strip().split()[-1]


def test_chat_repl_answers_and_resets(tmp_path):
    out = doppel(["chat", "--user", "ann"], tmp_path, stdin="Hello, who are you?\n/reset\n")
    assert out.returncode == 0, out.stderr
    assert "bot> " in out.stdout and "(forgotten)" in out.stdout


def test_a_bad_file_gives_a_clear_message_and_exit_code(tmp_path):
    bad = tmp_path / "x.ogg"
    bad.write_bytes(b"")
    out = doppel(["reply", "--audio", str(bad)], tmp_path)
    assert out.returncode == 2
    assert "empty" in out.stderr.lower() and "Traceback" not in out.stderr
