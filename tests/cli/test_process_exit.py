"""The ``qgen`` process ends without the slow interpreter teardown, but still runs what shutdown must:
non-daemon threads are joined, idle thread pools stopped, atexit handlers run, stdout flushed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

PROGRAM = """
import atexit, concurrent.futures, sys, threading, time
from pathlib import Path
from qgen.cli.process_exit import run_and_exit

out = Path(sys.argv[1])


def late_write():
    time.sleep(0.3)
    (out / "thread").write_text("joined")


def main():
    atexit.register(lambda: (out / "atexit").write_text("ran"))
    threading.Thread(target=late_write).start()  # not a daemon: exit must wait for it
    pool = concurrent.futures.ThreadPoolExecutor(1)  # never shut down: its idle worker must not hang exit
    pool.submit(time.sleep, 0.01).result()
    sys.stdout.write("buffered, no newline")  # a pipe is block-buffered: only the exit flush writes it
    {ending}


run_and_exit(main)
"""


def _run_program(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """``source`` as a script in a fresh Python, qgen importable, its folder as the first argument."""
    script = tmp_path / "program.py"
    script.write_text(source)
    return subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                          timeout=60, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("ending, status, stderr", [
    ("return", 0, ""),
    ("raise SystemExit(3)", 3, ""),
    ("raise SystemExit(None)", 0, ""),
    ("raise SystemExit('qgen: error: a message')", 1, "qgen: error: a message\n"),
])
def test_the_quick_exit_keeps_what_interpreter_shutdown_guarantees(tmp_path, ending, status, stderr):
    proc = _run_program(tmp_path, PROGRAM.format(ending=ending))
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, "buffered, no newline", stderr)
    assert (tmp_path / "thread").read_text() == "joined"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_an_unexpected_error_still_exits_with_a_traceback(tmp_path):
    proc = _run_program(tmp_path, "from qgen.cli.process_exit import run_and_exit\n\n"
                                  "def main():\n    raise RuntimeError('a bug')\n\nrun_and_exit(main)\n")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "RuntimeError: a bug" in proc.stderr


SITECUSTOMIZE = """
import atexit
from pathlib import Path

OUT = Path({out!r})
atexit.register(lambda: (OUT / "atexit").write_text("ran"))


class _Teardown:  # collected only by the interpreter's slow module teardown
    def __del__(self):
        (OUT / "teardown").write_text("ran")


_marker = _Teardown()
"""


@pytest.mark.parametrize("entry", ["python -m qgen.cli", "qgen script"])
def test_the_qgen_entry_points_skip_the_module_teardown(tmp_path, entry):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(out=str(tmp_path)))
    script = Path(sys.executable).with_name("qgen")
    if entry == "qgen script" and not script.is_file():
        pytest.skip("the qgen script is not installed next to this Python")
    command = [sys.executable, "-m", "qgen.cli"] if entry.startswith("python") else [str(script)]
    proc = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{site}:{REPO}", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and proc.stdout.strip()
    assert (tmp_path / "atexit").is_file()
    assert not (tmp_path / "teardown").exists()


def test_what_compiled_code_printed_is_flushed_too(tmp_path):
    # printf into C's stdio buffer (a pipe: fully buffered), which only exit()'s flush would write
    proc = _run_program(tmp_path, "import ctypes\nfrom qgen.cli.process_exit import run_and_exit\n\n"
                                  "def main():\n    ctypes.CDLL(None).printf(b'from C')\n\nrun_and_exit(main)\n")
    assert proc.returncode == 0 and proc.stdout == "from C"
