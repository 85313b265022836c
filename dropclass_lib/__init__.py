"""DropClass / DropAdapt speaker-recognition toolkit: the library behind steps/ and utils/.

``dropclass_lib.load_model(package_dir)`` opens a trained system for use from Python
(:mod:`dropclass_lib.api`); it is imported on first use, so that the steps that never need it
(VAD, CMN, data-directory tools) do not pay for importing torch.
"""

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from dropclass_lib.api import load_model

        return load_model
    raise AttributeError(f"module 'dropclass_lib' has no attribute {name!r}")
