"""backends.toml parsing: the shipped file loads; bad files fail with the key and the line."""

from __future__ import annotations

import pytest

from qgen.backends.registry import REPO_BACKENDS, get_backend, load_backends, parse_backends
from qgen.errors import QgenError


def test_shipped_backends_file_loads_with_required_entries() -> None:
    specs = load_backends(REPO_BACKENDS)
    assert specs["statevector"].kind == "statevector"
    assert specs["aer_simulator"].kind == "aer"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[backends.x]\nkind = "aer"\nshots = "10"\n', "backends.toml:3: backends.x.shots: expected an integer"),
        ('[backends.x]\nkind = "aer"\n\nsohts = 10\n', "backends.toml:4: unknown key 'backends.x.sohts'"),
        ('[backends.x]\nkind = "quantum"\n', "unknown kind 'quantum'"),
        ('[backends.x]\nkind = "aer"\nprecision = -1.0\n', "precision must be >= 0"),
        ('[backends.x]\nkind = "fake"\n', "needs a device name"),
        ('[backends.x]\nkind = "aer"\nexecution_mode = "sessions"\n', "unknown execution_mode 'sessions'"),
        ('[backend.x]\nkind = "aer"\n', "unknown top-level table 'backend'"),
        ('[backends.x\nkind = "aer"\n', "invalid TOML"),
        ('[backends.x]\nkind = "statevector"\nmethod = "tensor"\n',
         "backends.toml:3: backend 'x': method must be one of automatic, statevector, mps"),
        ('[backends.x]\nkind = "statevector"\nsimulation_precision = "half"\n',
         "backends.toml:3: backend 'x': simulation_precision must be one of double, single, got 'half'"),
        ('[backends.x]\nkind = "aer"\nsimulation_precision = "single"\n',
         "backends.toml:3: backend 'x': simulation_precision must be 'double' for kind 'aer'"),
    ],
)
def test_bad_backends_files_name_the_problem(text: str, fragment: str) -> None:
    with pytest.raises(QgenError) as err:
        parse_backends(text)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_backend_lists_known_ones() -> None:
    with pytest.raises(QgenError, match="unknown backend 'nope'; known backends: statevector, statevector_double, aer_simulator"):
        get_backend("nope", REPO_BACKENDS)
