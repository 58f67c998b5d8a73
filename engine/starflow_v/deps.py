"""The 7B's optional packages (the `large` extra), checked before anything heavy loads.

require_large()   # EngineError naming what is missing and the install command
"""

from __future__ import annotations

import importlib.util
import sys

from ..api import EngineError

INSTALL = "pip install -e '.[large]'"
LARGE_PACKAGES = ("transformers", "diffusers", "sentencepiece")


def _importable(name: str) -> bool:
    if name in sys.modules:  # imported already, or blocked (None)
        return sys.modules[name] is not None
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing_large() -> list[str]:
    """The `large` extra's packages that cannot be imported here."""
    return [name for name in LARGE_PACKAGES if not _importable(name)]


def require_large() -> None:
    """Raise a one-line EngineError naming the missing packages and the command that installs them."""
    missing = missing_large()
    if missing:
        raise EngineError(f"the 7B needs {', '.join(missing)}: {INSTALL}")
