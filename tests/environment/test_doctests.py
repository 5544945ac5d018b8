"""The examples in the modules' docstrings run and give what they say."""

from __future__ import annotations

import doctest

import pytest

from apps.environment import aqi, attribution, casework, exceedance, hj212, monthly, plume


@pytest.mark.parametrize("module", [aqi, hj212, plume, exceedance, attribution, casework, monthly])
def test_docstring_examples(module: object) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)  # type: ignore[arg-type]
    assert result.attempted > 0
    assert result.failed == 0
