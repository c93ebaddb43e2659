"""The API's options are keyword-only; border, device and algorithm by position (0.1.0's form)
still work for now, with a DeprecationWarning, and give the same result."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import clconv
import clconv.dask


@pytest.mark.parametrize("fn", [clconv.convolve, clconv.convolve_bank, clconv.dask.convolve])
def test_options_are_keyword_only(fn):
    params = list(inspect.signature(fn).parameters.values())
    assert [p.kind for p in params[:2]] == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * 2
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params[2:]), params


def test_positional_border_is_deprecated_but_works(runtime):
    image = np.random.default_rng(3).random((12, 17)).astype(np.float32)
    with pytest.warns(DeprecationWarning, match=r"pass border, device by keyword"):
        old = clconv.convolve(image, "sharpen", "wrap", runtime)
    np.testing.assert_array_equal(old, clconv.convolve(image, "sharpen", border="wrap", device=runtime))
    with pytest.warns(DeprecationWarning):
        bank = clconv.convolve_bank(image, ["sobel-x", "blur"], "nearest", device=runtime)
    np.testing.assert_array_equal(bank[1], clconv.convolve(image, "blur", border="nearest", device=runtime))
    with pytest.raises(TypeError, match="multiple values for argument 'border'"), pytest.warns(DeprecationWarning):
        clconv.convolve(image, "blur", "wrap", border="nearest")
