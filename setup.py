"""Only what pyproject.toml cannot say: the package list is the discovered edgeprune.*
packages plus the top-level profiles/ and runtimes/ folders (and their data subfolders),
shipped inside the package as edgeprune.profiles and edgeprune.runtimes. package-dir and
package-data are in pyproject.toml; edgeprune/locations.py reads them."""

from setuptools import find_packages, setup

DATA_PACKAGES = ["edgeprune.profiles", "edgeprune.profiles.luts", "edgeprune.runtimes", "edgeprune.runtimes.emulation"]

setup(packages=[*find_packages(include=["edgeprune", "edgeprune.*"]), *DATA_PACKAGES])
