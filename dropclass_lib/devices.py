"""The one device rule of every step: ``--device auto`` (the default) is CUDA when available,
else the CPU; an explicit ``cuda`` on a machine without it is an error, never a silent CPU run."""

from __future__ import annotations

from dropclass_lib.errors import UserError

DEFAULT_DEVICE = "auto"
DEVICE_HELP = "torch device: auto (cuda when available, else cpu), cpu, cuda, cuda:N"


def resolve_device(name: str) -> str:
    """``name`` as a torch device string, ``auto`` resolved."""
    import torch

    name = str(name or DEFAULT_DEVICE)
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine (use --device auto or cpu)")
    try:
        torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a torch device ({DEVICE_HELP})") from None
    return name
