"""The local Supabase stack moved to the top-level package ``supabase_local/``; this is its old name.

``tests.supabase_local`` and ``tests.supabase_local.<module>`` are the *same* module objects as
``supabase_local`` and ``supabase_local.<module>`` (registered in ``sys.modules``), so classes,
constants and state are shared whichever name a test imports.
"""

import importlib
import pkgutil
import sys

import supabase_local
from supabase_local import *  # noqa: F403
from supabase_local import __all__  # noqa: F401

for _info in pkgutil.iter_modules(supabase_local.__path__):
    if _info.name not in ("__main__", "tests", "pytest_plugin"):
        _module = importlib.import_module(f"supabase_local.{_info.name}")
        sys.modules[f"{__name__}.{_info.name}"] = _module
        globals()[_info.name] = _module
