"""Issue 19 item 15: the project's license is an SPDX expression, so building it (pip install)
prints no setuptools `project.license` deprecation."""

from __future__ import annotations

import tomllib
import warnings
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def test_license_is_spdx_and_the_build_needs_a_setuptools_that_reads_it() -> None:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert isinstance(data["project"]["license"], str)
    setuptools = next(Requirement(r) for r in data["build-system"]["requires"] if r.startswith("setuptools"))
    assert Version("77") in setuptools.specifier and Version("76.9") not in setuptools.specifier


def test_setuptools_reads_the_metadata_without_a_license_warning() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert dist.metadata.license_expression == "LicenseRef-Proprietary"
    assert not [w for w in caught if "license" in str(w.message).lower()], [str(w.message) for w in caught]
