"""qgen: Qiskit-native hybrid quantum-classical diffusion image generation.

The Python API (``qgen.api``) is available at the top level, imported on first use so that
``import qgen`` (and ``qgen --version``) stays fast::

    import qgen
    run = qgen.train(qgen.run_config(classes=(3,), n_train=64))
    qgen.sample(run, n=64, sampler="dpm", steps=10)
    qgen.evaluate(run)
    model = qgen.from_pretrained(qgen.export(run, "my-model"))
"""

from qgen.version import __version__

#: the names of qgen.api that ``qgen.<name>`` resolves (lazily, PEP 562)
API = ("Evaluation", "Samples", "evaluate", "export", "from_pretrained", "load_backend", "noise_report",
       "plan_sample", "resume", "run_config", "sample", "train", "write_circuits")

__all__ = ["__version__", *API]


def __getattr__(name: str):
    if name in API:
        from qgen import api

        return getattr(api, name)
    raise AttributeError(f"module 'qgen' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *API})
