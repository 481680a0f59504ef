"""Typed exceptions raised by hapgpu.

Library code raises these; only the command-line interface turns them into exit codes.
"""

__all__ = [
    "HapGpuError",
    "BackendUnavailableError",
    "InvalidParameterError",
    "MemoryBudgetError",
    "InvalidInputError",
    "WCSError",
    "UnusableInputError",
    "NoUsableInputError",
    "IncompatibleInputsError",
    "OutputTooLargeError",
    "OutputWriteError",
    "CatalogUnavailableError",
    "DistributedUnavailableError",
]


class HapGpuError(Exception):
    """Base class of every error hapgpu raises on purpose."""


class BackendUnavailableError(HapGpuError, RuntimeError):
    """The requested compute backend cannot run on this machine (e.g. ``gpu`` without CUDA).

    Parameters
    ----------
    problem : str
        What is missing, without advice (e.g. "backend 'gpu' needs a CUDA device ...").
    hint : str, optional
        What a library caller can do instead, in Python terms (``backend='cpu'``). The command
        line replaces it with the equivalent options (``--backend cpu``).
    """

    def __init__(self, problem: str, hint: str = ""):
        super().__init__(f"{problem} {hint}".strip())
        self.problem = problem
        self.hint = hint


class InvalidParameterError(HapGpuError, ValueError):
    """A parameter value is out of range or not one of the accepted choices."""


class MemoryBudgetError(InvalidParameterError):
    """A memory budget (host or device) is too small for the work asked of it: even one input
    alone needs more accumulator memory than the budget allows. The message names the input,
    the bytes it needs and the budget; ``need`` and ``budget`` hold them as numbers.

    Parameters
    ----------
    message : str
        The full message.
    need, budget : int
        Bytes needed and bytes allowed.
    """

    def __init__(self, message: str, need: int = 0, budget: int = 0):
        super().__init__(message)
        self.need = int(need)
        self.budget = int(budget)


class InvalidInputError(HapGpuError, ValueError):
    """Input data (an array or a file) has the wrong shape, type or content."""


class WCSError(HapGpuError, ValueError):
    """A WCS cannot be used: non-finite values, missing keywords, or no overlap."""


class CatalogUnavailableError(HapGpuError, RuntimeError):
    """A reference catalogue could not be obtained: the service is unreachable, timed out or
    answered with an error, or its reply could not be read."""


class UnusableInputError(InvalidInputError):
    """An input file is readable but cannot contribute to a product (exposure time not
    positive, no science data, every pixel flagged bad). Pipelines drop such an input with a
    warning and go on with the others."""


class NoUsableInputError(InvalidInputError):
    """Every input was dropped as unusable; the message names each file and why."""


class IncompatibleInputsError(InvalidInputError):
    """Inputs that cannot be combined into one product (e.g. different instruments or
    detectors); the message names each file and what differs."""


class OutputTooLargeError(WCSError):
    """An output frame would exceed the configured size limit (``max_output_pixels``),
    typically because the inputs cover areas of sky that do not overlap."""


class OutputWriteError(HapGpuError, OSError):
    """An output file or folder cannot be written (disk full, permissions, a file where a
    folder should be); the message names the path and keeps the operating system's reason."""


class DistributedUnavailableError(HapGpuError, RuntimeError):
    """Dask distributed cannot be used for a scale-out run (``--workers``, ``--scheduler``):
    the ``distributed`` extra is not installed (``pip install 'hapgpu[distributed]'``), the
    local cluster cannot start, or no scheduler answers at the given address; the message
    says which."""
