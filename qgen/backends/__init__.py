"""Backends: what evaluates the quantum bottleneck and measures quantum-noise bits.

One class per backends.toml ``kind``, behind the interface in ``base.py``:

  base.py           QuantumBackend (prepare, estimator/gradient, make_qnn, bit_sampling, journaling,
                    describe, capabilities), PreparedCircuit, the ISA pass manager
  exact.py          kind statevector: qgen's exact estimator and gradients
  aer.py            kind aer: Qiskit Aer primitives, ideal or depolarizing noise
  fake.py           kind fake: Aer with a fake IBM device's ISA and noise, on the active qubits
  ibm.py            kind ibm: IBM hardware (or --local: its fake) through qiskit-ibm-runtime
  registry.py       kind -> class, backends.toml parsing, load_backend / backend_for

and what the kinds use:

  spec.py           BackendSpec: the typed form of one [backends.NAME] table
  bit_sampling.py   BitSampling: sampler + circuits that the noise package turns into bits
  reduction.py      a transpiled circuit, its observables, noise model and device target restricted
                    to the active qubits
  shot_estimator.py kind fake's estimator: density matrix + readout error + multinomial shot noise
  local_worker.py   --local executor primitives: the active qubits, in a child process Ctrl-C abandons
  reduced_device.py a few device qubits with their own calibrated noise (noise bits on fakes)
  devices.py        IBM device names, retired devices, fake twins
  runtime.py        qiskit-ibm-runtime: credentials, the service, executor primitives
  execution_mode.py job, batch or session (on hardware and --local alike)
  executor_options.py  executor options from a spec
  executor_cost.py  what a job costs on the executor primitives: shots, QPU time, job plans
  journaled.py      primitives that journal every job and charge the shot budget
  journal.py        the crash-safe job journal (jobs.jsonl)
  job_files.py      where a run keeps its journal, results, ledger and pools (hardware and --local apart)
  ledger.py         the run's shot ledger (budget.json) and the budget it leaves
  artifacts.py      circuits/<backend>/<circuit>/ inspection files

What a command will submit, and whether it fits the budget, is qgen.planner's answer, from the cost
model here. Nothing here imports ``qgen.noise``: the noise package asks a backend for its
``bit_sampling``.
"""
