"""Backend kinds are classes: callers ask capabilities (never the kind), packages import without
cycles, and a new kind is one class plus one registry entry."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest

from qgen.backends import registry
from qgen.backends.exact import ExactBackend
from qgen.backends.registry import BACKEND_KINDS, REPO_BACKENDS, backend_for, load_backend, parse_backends
from qgen.backends.spec import BackendSpec
from qgen.circuits import AnsatzSpec, build_ansatz
from qgen.errors import QgenError
from tests.helpers import REPO

QGEN = REPO / "qgen"
BACKENDS = QGEN / "backends"

# A comparison with a backend kind: ``spec.kind == ...``/``in``, or any ``kind`` against a kind name.
KIND_TEST = re.compile(
    r"spec\.kind\s*(?:[!=]=|\bin\b|\bnot\s+in\b)"
    r"|\bkind\s*(?:[!=]=|\bin\b|\bnot\s+in\b)\s*[(\[{]?\s*[\"'](?:statevector|aer|fake|ibm)[\"']"
    r"|[\"'](?:statevector|aer|fake|ibm)[\"']\s*(?:[!=]=|\bin\b)\s*[\w.]*kind\b"
)


def test_no_backend_kind_tests_outside_the_backends_package() -> None:
    offenders = [
        f"{path.relative_to(QGEN.parent)}:{number}: {line.strip()}"
        for path in sorted(QGEN.rglob("*.py")) if BACKENDS not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if KIND_TEST.search(line)
    ]
    assert not offenders, "ask the backend a capability instead of testing its kind:\n" + "\n".join(offenders)


def test_the_kind_test_pattern_catches_what_it_should() -> None:
    assert KIND_TEST.search('if backend.spec.kind == "ibm":')
    assert KIND_TEST.search('if spec.kind in ("fake", "ibm"):')
    assert KIND_TEST.search('kind != "statevector"')
    assert not KIND_TEST.search('if cfg.model.kind == "quantum":')
    assert not KIND_TEST.search('f"backend {spec.name} ({spec.kind})"')


def _module_name(path: Path) -> str:
    parts = path.relative_to(QGEN.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, *, top_level_only: bool) -> set[str]:
    """qgen modules ``path`` imports: module-level statements only, or every import anywhere."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("qgen.")}


def _graph(*, top_level_only: bool) -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in [*BACKENDS.glob("*.py"), *(QGEN / "noise").glob("*.py")]}
    return {name: {m for m in _imports(path, top_level_only=top_level_only) if m in modules}
            for name, path in modules.items()}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_in_backends_and_noise() -> None:
    graph = _graph(top_level_only=True)
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))
    packages = {p: {_package(m) for m in deps} - {_package(p)} for p, deps in graph.items()}
    package_graph: dict[str, set[str]] = {}
    for module, deps in packages.items():
        package_graph.setdefault(_package(module), set()).update(deps)
    assert _cycle(package_graph) is None, " -> ".join(_cycle(package_graph))


def test_backends_never_import_noise_and_devices_never_import_the_runtime() -> None:
    graph = _graph(top_level_only=False)  # function-level imports count here too
    for module, deps in graph.items():
        if module.startswith("qgen.backends"):
            assert not {d for d in deps if d.startswith("qgen.noise")}, module
    assert not graph["qgen.backends.devices"] & {"qgen.backends.ibm", "qgen.backends.runtime"}


def test_every_kind_in_backends_toml_has_a_class() -> None:
    specs = registry.load_backends(REPO_BACKENDS)
    assert {spec.kind for spec in specs.values()} <= set(BACKEND_KINDS)
    for name, spec in specs.items():
        backend = backend_for(spec)
        assert backend.kind == spec.kind and backend.spec is spec, name
    assert load_backend("ibm_fez", REPO_BACKENDS).spends_shots
    assert not load_backend("fake_fez", REPO_BACKENDS).spends_shots
    assert not load_backend("ibm_fez", REPO_BACKENDS).has_simulation_method


def test_an_unknown_kind_is_refused_where_the_backend_is_built() -> None:
    with pytest.raises(QgenError, match="unknown kind 'quantum'; choose one of statevector, aer, fake, ibm"):
        backend_for(BackendSpec(name="x", kind="quantum"))


class DoublePrecisionExact(ExactBackend):
    """A new kind: the exact backend under another name, with its own row in ``qgen backends``."""

    kind = "exact_copy"

    def describe_device(self) -> tuple[str, str]:
        return "any", "any (exact copy)"


def test_a_new_kind_is_one_class_and_one_registry_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(BACKEND_KINDS, DoublePrecisionExact.kind, DoublePrecisionExact)
    toml = tmp_path / "backends.toml"
    toml.write_text('[backends.copy]\nkind = "exact_copy"\nmethod = "statevector"\n')
    backend = load_backend("copy", toml)
    assert isinstance(backend, DoublePrecisionExact)
    row = backend.describe()
    assert row["basis_gates"] == "any (exact copy)" and row["shots"] == "exact" and row["credentials"] == "not needed"
    # the base class still validates the new kind's specs with its parent's rules
    with pytest.raises(QgenError, match="backends.toml:3: backend 'bad': method must be one of"):
        parse_backends('[backends.bad]\nkind = "exact_copy"\nmethod = "tensor"\n')

    qc = build_ansatz(AnsatzSpec(3, 1, "linear"))
    qnn = backend.make_qnn(qc)
    reference = load_backend("statevector_double", REPO_BACKENDS).make_qnn(qc)
    rng = np.random.default_rng(3)
    x, w = rng.uniform(-np.pi, np.pi, (2, 3)), rng.uniform(-1, 1, qnn.num_weights)
    np.testing.assert_allclose(qnn.forward(x, w), reference.forward(x, w), atol=1e-12)
    assert backend.simulation_method(qc) == "statevector"
