"""The chaos suite: ``make chaos`` runs it at full size (1,000 jobs per fault); CI runs a
short version. Its table of what survived what is printed by tests/chaos/report.py,
a plugin of the root conftest, so that it works when pytest-xdist runs the scenarios.
"""

from __future__ import annotations

import pytest

from tests.chaos.report import ChaosReport


@pytest.fixture
def chaos_report() -> ChaosReport:
    return ChaosReport()
