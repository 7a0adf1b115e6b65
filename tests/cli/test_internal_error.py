"""The CLI's safety net (issue #21, section 3): an exception no command expected is one
``qgen: internal error:`` line naming a file that holds the traceback, exit 1 -- never a raw
traceback, never silence."""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

# qgen's real entry point (qgen.cli.run), with one command's work replaced by a failure
PROGRAM = """
import sys
import qgen.circuit_files as circuits

def broken(*args, **kwargs):
    raise {error}

circuits.write_circuits = broken
{setup}
sys.argv = ["qgen", "circuits", "--qubits", "2"]
from qgen.cli import run
run()
"""


def run_failing(tmp_path: Path, error: str, setup: str = "") -> subprocess.CompletedProcess:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM.format(error=error, setup=setup))
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "TMPDIR": str(tmp_path), "QGEN_THREADS": "1"}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, env=env)


def test_an_unexpected_exception_is_one_line_and_a_traceback_file(tmp_path: Path) -> None:
    res = run_failing(tmp_path, 'ZeroDivisionError("a bug\\nover two lines")')
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("qgen: internal error: ZeroDivisionError: a bug over two lines (the traceback is in ")
    (saved,) = tmp_path.glob("qgen-internal-error-*.txt")
    assert str(saved) in line
    text = saved.read_text()
    assert "Traceback" in text and "in broken" in text and "ZeroDivisionError: a bug" in text
    assert "command: qgen circuits --qubits 2" in text


def test_without_a_writable_temp_folder_it_is_still_one_line(tmp_path: Path) -> None:
    full = ("import errno, tempfile\n"
            "def full(*a, **k):\n"
            "    raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "tempfile.mkstemp = full")
    res = run_failing(tmp_path, "KeyError('x')", setup=full)
    assert res.returncode == 1
    (line,) = res.stderr.strip().splitlines()
    assert line == ("qgen: internal error: KeyError: 'x' (the traceback could not be saved (No space left on "
                    "device))")


@pytest.mark.parametrize("error, status, start", [
    (f"PermissionError({errno.EACCES}, 'Permission denied', '/somewhere/file')", 1,
     "qgen: error: Permission denied: /somewhere/file"),
    (f"OSError({errno.EBADF}, 'Bad file descriptor')", 1, "qgen: internal error: OSError: [Errno 9]"),
])
def test_os_errors_a_user_can_fix_are_user_errors(tmp_path: Path, error, status, start) -> None:
    res = run_failing(tmp_path, error)
    assert res.returncode == status and "Traceback" not in res.stderr
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith(start)
