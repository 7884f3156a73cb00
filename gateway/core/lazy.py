"""Third-party modules imported on first use instead of at start.

Every feature module is loaded in every worker (see :mod:`gateway.extensions`), but PyJWT (with
cryptography) and Jinja2 are only needed once a session JWT, an OAuth flow or a dashboard page is
handled. Deferring them keeps about 10 MiB out of each worker that never uses those features.
Modules keep ``import jwt`` under ``TYPE_CHECKING`` so mypy still sees the real module.
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

__all__ = ["lazy_module"]


def lazy_module(name: str) -> ModuleType:
    """``name`` as a module object that really imports on its first attribute access."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"No module named {name!r}")
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module
