"""IBM device names: which are live, which are retired, and the fake backend that stands in locally."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qgen.errors import QgenError

if TYPE_CHECKING:
    from qiskit_ibm_runtime.fake_provider.fake_backend import FakeBackendV2

EAGLE_RETIREMENT = "2025-11-03"

# device -> retirement date (None where we only know that it is gone, not when). The Eagle family went on
# 2025-11-03; the Falcon and Hummingbird devices (and the first Eagle) were retired before that.
RETIRED: dict[str, str | None] = {
    **{
        f"ibm_{name}": EAGLE_RETIREMENT
        for name in (
            "brisbane", "sherbrooke", "kyiv", "nazca", "cusco", "kawasaki", "quebec", "rensselaer",
            "osaka", "kyoto", "strasbourg", "brussels",
        )
    },
    **{
        f"ibm_{name}": None
        for name in (
            # Falcon
            "algiers", "auckland", "cairo", "geneva", "guadalupe", "hanoi", "jakarta", "kolkata",
            "lagos", "mumbai", "montreal", "nairobi", "oslo", "perth", "peekskill", "prague", "toronto",
            "lima", "belem", "quito", "manila", "bogota", "santiago", "casablanca", "paris", "rome",
            # Hummingbird, and the first Eagle
            "brooklyn", "manhattan", "ithaca", "washington",
        )
    },
}

# Heron devices open to users; the first four are the ones we suggest first.
LIVE_HERON: tuple[str, ...] = (
    "ibm_fez", "ibm_marrakesh", "ibm_kingston", "ibm_pittsburgh", "ibm_torino", "ibm_aachen", "ibm_boston",
)

# Classes in qiskit_ibm_runtime.fake_provider that are not one device.
_NOT_DEVICES = {"FakeProviderForBackendV2", "FakeProvider", "FakeBackendV2", "FakeFractionalBackend"}


def canonical_device_name(name: str) -> str:
    """'brisbane', 'fake_brisbane', 'FakeBrisbane', 'IBM_Brisbane' -> 'ibm_brisbane'."""
    short = name.strip().lower()
    for prefix in ("ibm_", "fake_", "fake"):
        if short.startswith(prefix):
            short = short[len(prefix):]
            break
    return f"ibm_{short}"


def fake_device_classes() -> dict[str, type]:
    """'ibm_brisbane' -> FakeBrisbane for every fake device that qiskit-ibm-runtime ships (no instances)."""
    # deferred: qiskit-ibm-runtime is ~0.9 s of import (measured), and the registry imports this module for
    # every command; only kinds fake and ibm need the fakes
    import qiskit_ibm_runtime.fake_provider as fake_provider

    classes: dict[str, type] = {}
    for attr in dir(fake_provider):
        if not attr.startswith("Fake") or attr in _NOT_DEVICES:
            continue
        device = canonical_device_name(attr[len("Fake"):].removesuffix("V2"))
        # Prefer FakeX over FakeXV2 where both exist: the plain name is the maintained one.
        if device not in classes or not attr.endswith("V2"):
            classes[device] = getattr(fake_provider, attr)
    return classes


def fake_backend_name(device: str) -> str | None:
    """Class name of the local stand-in for ``device`` ('FakeBrisbane'), or None if none ships."""
    cls = fake_device_classes().get(canonical_device_name(device))
    return cls.__name__ if cls else None


def fake_backend(device: str) -> FakeBackendV2:
    """The fake backend (device snapshot: coupling map, basis gates, calibrated errors) for ``device``."""
    classes = fake_device_classes()
    cls = classes.get(canonical_device_name(device))
    if cls is None:
        known = ", ".join(sorted(classes))
        raise QgenError(f"no fake backend for device {device!r}; qiskit-ibm-runtime ships fakes for: {known}")
    return cls()


def check_not_retired(device: str, allow_local: bool) -> None:
    """Refuse a retired device for hardware runs; locally its fake snapshot still works."""
    name = canonical_device_name(device)
    if name not in RETIRED or allow_local:
        return
    date = RETIRED[name]
    when = f" on {date}" if date else ""
    fake = fake_backend_name(name)
    local = f"--local to run on {fake}" if fake else "--local with a fake device (e.g. FakeBrisbane)"
    raise QgenError(
        f"{name} was retired{when}; use a live Heron device ({', '.join(LIVE_HERON)}) or {local}"
    )


def describe_device(device: str) -> tuple[str, str]:
    """(qubits, basis gates) of ``device`` for ``qgen backends``, from its fake twin (never contacts IBM)."""
    try:
        twin = fake_backend(device)
    except QgenError:
        return "?", "(no fake twin)"
    gates = ",".join(sorted(n for n in twin.operation_names
                            if n not in ("measure", "delay", "reset", "if_else", "for_loop", "switch_case",
                                         "while_loop", "id")))
    return str(twin.num_qubits), gates


def retirement_note(device: str) -> str:
    """The ``; retired DATE`` note of a retired device for ``qgen backends``; empty for a live one."""
    name = canonical_device_name(device)
    return f"; retired {RETIRED[name] or '(date unknown)'}" if name in RETIRED else ""
