"""IBM runtime layer, offline: device names, credentials, option mapping, execution modes, and the
executor primitives running locally on FakeBrisbane. Nothing here may contact IBM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import qiskit_ibm_runtime
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit.primitives import StatevectorEstimator
from qiskit.providers import BackendV2, Options, QubitProperties
from qiskit.quantum_info import SparsePauliOp
from qiskit.transpiler import Target
from qiskit_aer import AerSimulator
from qiskit_aer.noise import NoiseModel
from qiskit_ibm_runtime.exceptions import IBMRuntimeError

from qgen.backends.devices import LIVE_HERON, check_not_retired, fake_backend
from qgen.backends.execution_mode import ExecutionModeFallback, open_execution_mode
from qgen.backends.executor_options import estimator_options, sampler_options
from qgen.backends.local_worker import LocalExecutorEstimator
from qgen.backends.reduction import active_qubits
from qgen.backends.runtime import (
    CHANNEL,
    RuntimePrimitives,
    find_credentials,
    runtime_primitives,
    runtime_service,
)
from qgen.backends.spec import BackendSpec
from qgen.errors import QgenError


def ibm_spec(**overrides: object) -> BackendSpec:
    fields = {"name": "brisbane_test", "kind": "ibm", "device": "ibm_brisbane", "seed_simulator": 11}
    fields.update(overrides)
    return BackendSpec(**fields)


@pytest.fixture
def no_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No env token, no saved account, and a service constructor that fails the test if reached."""
    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.delenv("QISKIT_IBM_INSTANCE", raising=False)
    monkeypatch.setattr(qiskit_ibm_runtime.QiskitRuntimeService, "saved_accounts", staticmethod(lambda **_: {}))

    def must_not_connect(*args: object, **kwargs: object) -> None:
        raise AssertionError("QiskitRuntimeService was constructed without credentials")

    monkeypatch.setattr(qiskit_ibm_runtime.QiskitRuntimeService, "__init__", must_not_connect)


# ------------------------------------------------------------------------------------------ devices


def test_retired_device_error_names_live_alternatives_and_the_fake() -> None:
    with pytest.raises(QgenError) as info:
        check_not_retired("ibm_brisbane", allow_local=False)
    message = str(info.value)
    assert "\n" not in message
    assert "ibm_brisbane was retired on 2025-11-03" in message
    for live in ("ibm_fez", "ibm_marrakesh", "ibm_kingston", "ibm_pittsburgh"):
        assert live in message
    assert "--local to run on FakeBrisbane" in message


def test_retired_device_is_fine_locally_and_live_devices_pass() -> None:
    check_not_retired("brisbane", allow_local=True)
    for live in LIVE_HERON:
        check_not_retired(live, allow_local=False)


def test_runtime_primitives_refuse_a_retired_device_before_looking_for_credentials(no_credentials: None) -> None:
    with pytest.raises(QgenError, match="retired"):
        runtime_primitives(ibm_spec(device="sherbrooke"), local=False)


@pytest.mark.parametrize("name", ["ibm_brisbane", "fake_brisbane", "brisbane", "FakeBrisbane"])
def test_fake_backend_accepts_every_spelling(name: str) -> None:
    assert fake_backend(name).name == "fake_brisbane"


@pytest.mark.parametrize("name, expected", [("ibm_fez", "fake_fez"), ("marrakesh", "fake_marrakesh"),
                                            ("ibm_kingston", "fake_kingston"), ("ibm_torino", "fake_torino")])
def test_fake_backend_covers_heron_devices(name: str, expected: str) -> None:
    assert fake_backend(name).name == expected


def test_unknown_fake_backend_lists_what_exists() -> None:
    with pytest.raises(QgenError, match="no fake backend for device 'ibm_atlantis'.*ibm_brisbane.*ibm_fez"):
        fake_backend("ibm_atlantis")


# -------------------------------------------------------------------------------------- credentials


def test_missing_credentials_is_one_line_naming_the_env_vars_and_local(no_credentials: None) -> None:
    with pytest.raises(QgenError) as info:
        runtime_primitives(ibm_spec(device="ibm_fez"), local=False)
    message = str(info.value)
    assert "\n" not in message
    assert "QISKIT_IBM_TOKEN" in message and "QISKIT_IBM_INSTANCE" in message
    assert "save_account" in message and CHANNEL in message
    assert "--local" in message


def test_env_credentials_build_a_service_on_ibm_quantum_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[dict] = []

    class RecordingService:
        saved_accounts = staticmethod(lambda **_: {})

        def __init__(self, **kwargs: object) -> None:
            built.append(kwargs)

    monkeypatch.setenv("QISKIT_IBM_TOKEN", "secret-token")
    monkeypatch.setenv("QISKIT_IBM_INSTANCE", "crn:v1:test")
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", RecordingService)
    assert find_credentials().source == "environment"
    assert "secret-token" not in repr(find_credentials())
    runtime_service(ibm_spec(device="ibm_fez"))
    assert built == [{"channel": CHANNEL, "token": "secret-token", "instance": "crn:v1:test"}]


def test_service_failure_becomes_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    class UnreachableService:
        saved_accounts = staticmethod(lambda **_: {"work": {"instance": "crn:x", "is_default_account": True}})

        def __init__(self, **kwargs: object) -> None:
            raise ConnectionError("Max retries exceeded\nwith url: https://quantum.cloud.ibm.com")

    monkeypatch.delenv("QISKIT_IBM_TOKEN", raising=False)
    monkeypatch.setattr(qiskit_ibm_runtime, "QiskitRuntimeService", UnreachableService)
    with pytest.raises(QgenError) as info:
        runtime_service(ibm_spec(device="ibm_fez"))
    message = str(info.value)
    assert "\n" not in message
    assert "saved account 'work'" in message and "Max retries exceeded" in message and "--local" in message


# ------------------------------------------------------------------------------------------ options


def test_estimator_options_map_the_spec() -> None:
    options = estimator_options(ibm_spec(precision=0.02, shots=999, dynamical_decoupling=True, twirling=True,
                                         resilience_level=2))
    assert options.default_precision == 0.02 and options.default_shots is None  # precision wins
    assert options.dynamical_decoupling.enable
    assert options.twirling.enable_gates and options.twirling.enable_measure
    assert options.resilience_level == 2
    assert options.simulator.seed_simulator == 11


def test_estimator_shots_when_no_precision_and_twirling_left_to_resilience_level() -> None:
    options = estimator_options(ibm_spec(shots=2048, resilience_level=1))
    assert options.default_shots == 2048
    assert options.twirling.enable_gates is None and options.twirling.enable_measure is None
    assert not options.dynamical_decoupling.enable


def test_sampler_options_map_the_spec() -> None:
    options = sampler_options(ibm_spec(shots=512, twirling=True))
    assert options.default_shots == 512
    assert options.twirling.enable_gates and options.twirling.enable_measure
    assert sampler_options(ibm_spec(precision=0.1)).default_shots == 100


def test_unsupported_resilience_level_is_a_clear_error(no_credentials: None) -> None:
    with pytest.raises(QgenError, match="resilience_level 3 is not supported by the executor Estimator"):
        runtime_primitives(ibm_spec(device="ibm_fez", resilience_level=3), local=False)


# ----------------------------------------------------------------------------------- execution mode


class RecordingMode:
    def __init__(self, backend: object) -> None:
        self.backend = backend


class SessionRefused:
    def __init__(self, backend: object) -> None:
        raise IBMRuntimeError("You are not authorized to run a session when using the open plan.")


def test_job_mode_has_no_mode_object_and_batch_mode_a_batch() -> None:
    fake = fake_backend("ibm_fez")
    assert open_execution_mode("job", fake) is None
    assert isinstance(open_execution_mode("batch", fake, batch_cls=RecordingMode), RecordingMode)


def test_open_plan_falls_back_from_session_to_batch_with_a_warning() -> None:
    fake = fake_backend("ibm_fez")
    with pytest.warns(ExecutionModeFallback, match="open plan.*batch mode"):
        mode = open_execution_mode("session", fake, plan="open", session_cls=SessionRefused, batch_cls=RecordingMode)
    assert isinstance(mode, RecordingMode)


def test_refused_session_falls_back_to_batch_with_the_reason() -> None:
    fake = fake_backend("ibm_fez")
    with pytest.warns(ExecutionModeFallback, match="not authorized to run a session.*batch mode instead"):
        mode = open_execution_mode("session", fake, plan="premium", session_cls=SessionRefused, batch_cls=RecordingMode)
    assert isinstance(mode, RecordingMode)


# ------------------------------------------------------------------------------ local: FakeBrisbane

THETA = Parameter("theta")
ANGLES = np.array([[0.1], [1.2], [2.5]])
OBSERVABLES = [SparsePauliOp("ZZ"), SparsePauliOp("IZ"), SparsePauliOp("XX")]


def bell_like_circuit() -> QuantumCircuit:
    """ry(theta) then CNOT: <ZZ> = 1, <Z_0> = cos(theta), <XX> = sin(theta)."""
    circuit = QuantumCircuit(2)
    circuit.ry(THETA, 0)
    circuit.cx(0, 1)
    return circuit


def ideal_values() -> np.ndarray:
    pub = (bell_like_circuit(), [[obs] for obs in OBSERVABLES], ANGLES.T)
    return StatevectorEstimator().run([pub]).result()[0].data.evs  # shape (3 observables, 3 angles)


def local_estimator_pub(primitives: object) -> tuple:
    isa = primitives.pass_manager().run(bell_like_circuit())
    assert set(isa.count_ops()) <= set(primitives.backend.operation_names)  # really the device's ISA
    observables = [[obs.apply_layout(isa.layout)] for obs in OBSERVABLES]
    return (isa, observables, ANGLES.T)


def test_local_executor_estimator_on_fake_brisbane_agrees_with_statevector() -> None:
    # resilience_level 1 (TREX readout mitigation) and batch mode: the mode code path runs locally too
    spec = ibm_spec(precision=0.04, resilience_level=1, execution_mode="batch")
    with runtime_primitives(spec, local=True) as primitives:
        assert primitives.local and primitives.backend.name == "fake_brisbane"
        estimator = primitives.estimator()
        assert isinstance(estimator, LocalExecutorEstimator)
        pub = local_estimator_pub(primitives)
        assert len(active_qubits(pub[0])) == 2
        job = estimator.run([pub])
        assert isinstance(job.job_id(), str) and job.job_id()
        result = job.result()
        assert str(job.status()).upper().endswith("DONE")
    evs, stds = result[0].data.evs, result[0].data.stds
    ideal = ideal_values()
    assert evs.shape == ideal.shape == (3, 3)
    # within noise: 4 standard errors plus a little room for the device's (unmitigated) gate errors
    assert np.all(np.abs(evs - ideal) <= 4 * stds + 0.03), (evs, ideal, stds)
    assert np.all(stds > 0)  # shot noise really was sampled


def test_local_executor_sampler_on_fake_brisbane_returns_bit_arrays_of_the_right_shape() -> None:
    spec = ibm_spec(shots=200, execution_mode="session")
    with runtime_primitives(spec, local=True) as primitives:
        circuit = bell_like_circuit()
        circuit.measure_all()
        isa = primitives.pass_manager().run(circuit)
        result = primitives.sampler().run([(isa, ANGLES)]).result()
    bits = result[0].data.meas
    assert bits.shape == (3,)  # one binding per angle
    assert bits.num_shots == 200 and bits.num_bits == 2
    # ry(0.1)+CNOT is almost always 00, and always correlated up to device noise
    counts = bits[0].get_counts()
    assert counts.get("00", 0) > 150
    correlated = sum(n for key, n in bits[2].get_counts().items() if key in ("00", "11"))
    assert correlated > 170


def device_simulator(fake: BackendV2, qubits: set[int]) -> AerSimulator:
    """An Aer simulator of ``fake`` whose noise acts only on ``qubits``, run as a matrix product state.

    Why: the executor Estimator measures *every* qubit of the circuit (127 on FakeBrisbane), so Aer
    cannot drop idle qubits and a statevector needs 2**127 amplitudes. A matrix product state holds
    the idle qubits as a cheap product state, and leaving them noise-free changes nothing that the
    observables can see (they act as identity there, and the noise model has no crosstalk), while it
    keeps Aer from sampling noise on 100+ idle qubits every shot (about 10x faster).
    """
    view = _QubitSubsetView(fake, frozenset(qubits))
    noise_model = NoiseModel.from_backend(view)
    return AerSimulator.from_backend(fake, noise_model=noise_model, method="matrix_product_state")


class _QubitSubsetView(BackendV2):
    """The device's target with only the instructions on ``qubits``: what NoiseModel.from_backend reads."""

    def __init__(self, fake: BackendV2, qubits: frozenset[int]) -> None:
        super().__init__(name=f"{fake.name}_subset", backend_version=fake.backend_version)
        full = fake.target
        # Idle qubits get no T1/T2 either, so delays there (dynamical decoupling pads every idle
        # qubit) add no relaxation noise for Aer to sample.
        qubit_properties = [
            props if index in qubits else QubitProperties()
            for index, props in enumerate(full.qubit_properties or [QubitProperties()] * full.num_qubits)
        ]
        self._target = Target(
            num_qubits=full.num_qubits, dt=full.dt, qubit_properties=qubit_properties,
            granularity=full.granularity, min_length=full.min_length, pulse_alignment=full.pulse_alignment,
            acquire_alignment=full.acquire_alignment,
        )
        for name in full.operation_names:
            properties = full[name]
            operation = full.operation_from_name(name)
            if isinstance(operation, type) or properties is None or None in properties:
                # control flow (added by class) or a global instruction: no per-qubit noise to drop
                self._target.add_instruction(operation, name=name)
                continue
            kept = {qargs: props for qargs, props in properties.items() if set(qargs) <= qubits}
            self._target.add_instruction(operation, kept, name=name)

    @property
    def target(self) -> Target:
        return self._target

    @property
    def max_circuits(self) -> None:
        return None

    @classmethod
    def _default_options(cls) -> Options:
        return Options()

    def run(self, run_input, **options):  # noqa: ANN001, ANN003 - never runs; only read for its noise
        raise NotImplementedError("a qubit-subset view only describes noise")


def test_device_simulator_keeps_the_device_noise_on_the_used_qubits_only() -> None:
    simulator = device_simulator(fake_backend("ibm_brisbane"), {0, 1})
    noise_model = simulator.options.noise_model
    assert set(noise_model.noise_qubits) == {0, 1}
    assert {"ecr", "sx", "measure"} <= set(noise_model.noise_instructions)
    assert simulator.options.method == "matrix_product_state"


def test_hardware_path_builds_executor_primitives_with_the_spec_options() -> None:
    from qiskit_ibm_runtime.executor_estimator import Estimator
    from qiskit_ibm_runtime.executor_sampler import Sampler

    spec = ibm_spec(device="ibm_fez", precision=0.03, dynamical_decoupling=True)
    primitives = RuntimePrimitives(spec, fake_backend("ibm_fez"))  # what runtime_primitives builds, minus IBM
    estimator, sampler = primitives.estimator(), primitives.sampler()
    assert isinstance(estimator, Estimator) and isinstance(sampler, Sampler)
    assert estimator.options.default_precision == 0.03 and estimator.options.dynamical_decoupling.enable
    assert sampler.options.dynamical_decoupling.enable and estimator.mode is None  # job mode


def test_local_primitives_do_not_warn_about_deprecated_primitives() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with runtime_primitives(ibm_spec(), local=True) as primitives:
            primitives.estimator()
            primitives.sampler()


def test_closing_the_backend_closes_its_execution_mode_and_is_idempotent() -> None:
    from qgen.backends.ibm import IBMBackend

    backend = IBMBackend(ibm_spec(execution_mode="session"), local=True)
    closed: list[str] = []

    class Mode:
        def close(self) -> None:
            closed.append("mode")

    runtime = backend.runtime
    runtime.mode = Mode()  # what a hardware Session looks like to RuntimePrimitives
    backend.close()
    backend.close()
    assert closed == ["mode"] and backend._runtime is None
