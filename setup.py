"""Package layout that pyproject.toml cannot declare: folders installed under another import name.

The repository keeps the Supabase project in ``supabase/`` (the Supabase CLI's layout); the wheel
ships its SQL inside the ``stepsdk`` namespace as ``stepsdk/_supabase/`` (read with
``importlib.resources``), mapped here instead of copied, so the SQL exists once in the repository.
Everything else (metadata, dependencies, scripts) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

SQL_PACKAGES = {  # import name → repository folder; only *.sql of these folders are shipped
    "stepsdk._supabase": "supabase",
    "stepsdk._supabase.migrations": "supabase/migrations",
    "stepsdk._supabase.queries": "supabase/queries",
}

setup(
    # namespace-aware, as pyproject's [tool.setuptools.packages.find] is: a folder without
    # __init__.py (e.g. stepsdk/recording/) is still shipped (tests/test_wheel_smoke.py)
    packages=[*find_namespace_packages(include=["stepsdk*", "viewer*"]), *SQL_PACKAGES],
    package_dir=SQL_PACKAGES,
    package_data={name: ["*.sql"] for name in SQL_PACKAGES},
)
