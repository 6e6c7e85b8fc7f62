"""Package layout that pyproject.toml cannot declare: folders installed under another import name.

Two repository folders are installed inside the ``stepsdk`` namespace, mapped here (``package_dir``)
instead of copied or moved, so each file exists once in the repository and an editable install
imports it in place:

- ``viewer/`` (the viewer app, a top-level folder of the repository) is the import package
  ``stepsdk.viewer``: the wheel's only top-level import name is ``stepsdk``
  (tests/test_wheel_smoke.py). ``viewer/__init__.py`` refuses to be imported as ``viewer``.
- ``supabase/`` (the Supabase CLI's layout) ships its SQL as ``stepsdk/_supabase/`` (read with
  ``importlib.resources``).

Everything else (metadata, dependencies, scripts) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

VIEWER = {"stepsdk.viewer": "viewer"}  # import name → repository folder
SQL_PACKAGES = {  # import name → repository folder; only *.sql of these folders are shipped
    "stepsdk._supabase": "supabase",
    "stepsdk._supabase.migrations": "supabase/migrations",
    "stepsdk._supabase.queries": "supabase/queries",
}

setup(
    # namespace-aware, as pyproject's [tool.setuptools.packages.find] is: a folder without
    # __init__.py (e.g. stepsdk/recording/) is still shipped (tests/test_wheel_smoke.py)
    packages=[
        *find_namespace_packages(include=["stepsdk*"]),
        # viewer/data → stepsdk.viewer.data: subpackages follow the mapping of their parent
        *VIEWER,
        *(f"stepsdk.viewer.{name}" for name in find_namespace_packages("viewer", exclude=["*__pycache__*"])),
        *SQL_PACKAGES,
    ],
    package_dir=VIEWER | SQL_PACKAGES,
    package_data={name: ["*.sql"] for name in SQL_PACKAGES},
)
