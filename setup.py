"""Package discovery, the one thing pyproject.toml cannot say.

Every package under ``bulkimport/`` is found (a new subpackage cannot be left out of the wheel),
and the top-level ``migrations/`` folder ships inside it as ``bulkimport.migrations``: setuptools'
``packages.find`` does not combine with a renamed folder. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["bulkimport", "bulkimport.*"]), "bulkimport.migrations"],
    package_dir={"bulkimport.migrations": "migrations"},
)
