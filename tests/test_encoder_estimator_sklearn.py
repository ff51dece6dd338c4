"""The encoder estimators honour scikit-learn's estimator contract (the checks that apply to
estimators whose ``fit`` takes a dataset, targets and a split rather than X, y)."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import (
    check_get_params_invariance,
    check_no_attributes_set_in_init,
    check_parameters_default_constructible,
    check_set_params,
)

from neurrator.core.errors import InputError
from neurrator.encoder import EncoderConfig, Neurrator, NeurratorDINA, NeurratorRetriever
from neurrator.encoder.synthetic import synthetic_problem

ESTIMATORS = [Neurrator, NeurratorRetriever, NeurratorDINA]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_sklearn_checks_that_apply(cls):
    est = cls(preset="paper", max_steps=7)
    check_parameters_default_constructible(cls.__name__, cls())
    check_no_attributes_set_in_init(cls.__name__, est)
    check_get_params_invariance(cls.__name__, est)
    check_set_params(cls.__name__, est)


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_parameters_are_the_config_fields_with_the_same_defaults(cls):
    signature = inspect.signature(cls.__init__).parameters
    assert set(signature) - {"self"} == set(EncoderConfig.model_fields) | {"seed"}
    for name, field in EncoderConfig.model_fields.items():
        assert signature[name].default == field.default, name


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_clone_get_set_params(cls):
    est = cls(seed=3, preset="paper", lr=1e-3)
    copy = clone(est)
    assert copy is not est and copy.get_params() == est.get_params()
    assert copy.set_params(lr=5e-4, seed=4) is copy and copy.lr == 5e-4 and copy.seed == 4 and est.lr == 1e-3
    assert "lr=0.001" in repr(est) and "preset='paper'" in repr(est)
    with pytest.raises(ValueError):
        est.set_params(not_a_parameter=1)


def test_invalid_parameters_are_reported_by_fit_not_init():
    dataset, targets, split = synthetic_problem(n_units=6, n_frames=32, n_repeats=4, n_patches=4, dim=2)
    est = Neurrator(dropout=1.5, head="nonsense")  # construction never validates
    with pytest.raises(InputError, match="invalid encoder parameter"):
        est.fit(dataset, targets, split)
    assert not hasattr(est, "model_")


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_unfitted_estimator_raises_not_fitted(cls):
    dataset, _, split = synthetic_problem(n_units=6, n_frames=32, n_repeats=4, n_patches=4, dim=2)
    with pytest.raises(NotFittedError, match="not fitted"):
        cls().predict(dataset, split.test)
    with pytest.raises(NotFittedError):
        cls().save("unused")


def test_fitted_clone_is_unfitted_and_refits_identically():
    dataset, targets, split = synthetic_problem(n_units=8, n_frames=32, n_repeats=4, n_patches=4, dim=2, seed=1)
    est = Neurrator(seed=0, d_model=16, n_heads=2, ff_dim=16, conv_channels=4, unit_bottleneck=8, basis_rank=3,
                    basis_hidden=8, batch_size=16, max_steps=3, val_every=3, progress=False)
    est.fit(dataset, targets, split)
    copy = clone(est)
    assert not hasattr(copy, "model_")
    copy.fit(dataset, targets, split)
    assert np.array_equal(copy.predict(dataset, split.test[:4]).numpy(), est.predict(dataset, split.test[:4]).numpy())
