"""scikit-learn kernels and estimators: the library's own checks, composition, gradients."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from wideinf.architecture import Architecture
from wideinf.infer import infer
from wideinf.kernels.gradients import with_hyperparameters
from wideinf.sklearn import (
    InfiniteWidthClassifier,
    InfiniteWidthRegressor,
    NNGPKernel,
    NTKKernel,
)

ERF = {"layers": ["dense", "erf", "dense", "relu", "dense"]}

# Checks scikit-learn itself skips in this environment, with its reason; none is skipped or
# expected to fail because of the estimators.
SKIPPED_BY_ENVIRONMENT = {
    "check_array_api_input": "SCIPY_ARRAY_API is not set",
    "check_regressor_data_not_an_array": "pandas is not installed",
    "check_classifier_data_not_an_array": "pandas is not installed",
}


@pytest.mark.parametrize("estimator", [InfiniteWidthRegressor(), InfiniteWidthClassifier()])
def test_check_estimator(estimator):
    results = check_estimator(estimator, on_fail="raise", on_skip=None)
    skipped = {r["check_name"] for r in results if r["status"] == "skipped"}
    assert skipped <= set(SKIPPED_BY_ENVIRONMENT), skipped
    assert sum(r["status"] == "passed" for r in results) >= 45


def test_regressor_equals_infer_and_works_in_a_pipeline(rng):
    x, xs = rng.standard_normal((30, 3)), rng.standard_normal((6, 3))
    y = np.sin(x[:, 0])
    reg = InfiniteWidthRegressor(ERF, kernel="ntk", time=5.0, diag_reg=1e-4).fit(x, y)
    mean, sd = reg.predict(xs, return_std=True)
    out = infer(Architecture.from_dict(ERF), x, y, xs, kernel="ntk", time=5.0, diag_reg=1e-4)
    np.testing.assert_array_equal(mean, out.mean)
    np.testing.assert_array_equal(sd, out.sd)
    search = GridSearchCV(
        make_pipeline(StandardScaler(), InfiniteWidthRegressor(ERF)),
        {"infinitewidthregressor__kernel": ["nngp", "ntk-gp"]},
        cv=3,
    ).fit(x, y)
    assert search.best_score_ > 0.5
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(xs), mean)


def test_classifier_scores_and_classes(rng):
    x = rng.standard_normal((40, 2))
    y = np.where(x[:, 0] > 0.5, "a", np.where(x[:, 1] > 0, "b", "c"))
    clf = InfiniteWidthClassifier(ERF, diag_reg=1e-3).fit(x, y)
    scores = clf.decision_function(x[:5])
    assert scores.shape == (5, 3) and list(clf.classes_) == ["a", "b", "c"]
    np.testing.assert_array_equal(clf.predict(x[:5]), clf.classes_[np.argmax(scores, axis=1)])
    assert clf.score(x, y) > 0.9
    with pytest.raises(ValueError, match="one class"):
        InfiniteWidthClassifier().fit(x, np.zeros(40))


@pytest.mark.parametrize("cls", [NNGPKernel, NTKKernel])
def test_kernel_gradient_matches_central_differences(rng, cls):
    """sklearn's eval_gradient: d k / d log(hyperparameter); 1e-6 relative (see test_gradients)."""
    x = rng.standard_normal((15, 3))
    kernel = cls(ERF, W_std=1.3, b_std=0.2)
    k, grad = kernel(x, eval_gradient=True)
    assert grad.shape == (15, 15, 2)
    h = 1e-5
    for p in range(2):
        up, down = kernel.theta.copy(), kernel.theta.copy()
        up[p] += h
        down[p] -= h
        numeric = (kernel.clone_with_theta(up)(x) - kernel.clone_with_theta(down)(x)) / (2 * h)
        assert np.abs(grad[..., p] - numeric).max() <= 1e-6 * np.abs(numeric).max()
    arch = with_hyperparameters(Architecture.from_dict(ERF), 1.3, 0.2)
    which = "nngp" if cls is NNGPKernel else "ntk"
    np.testing.assert_array_equal(k, getattr(arch.kernel(x), which))
    np.testing.assert_array_equal(kernel.diag(x), np.diagonal(k))
    fixed = cls(ERF, b_std_bounds="fixed")
    assert fixed(x, eval_gradient=True)[1].shape == (15, 15, 1) and fixed.theta.size == 1


def test_kernels_compose_inside_a_gaussian_process(rng):
    x = rng.standard_normal((40, 2))
    y = np.sin(2 * x[:, 0]) + 0.05 * rng.standard_normal(40)
    kernel = ConstantKernel(1.0) * NNGPKernel(ERF, W_std=1.0, b_std=0.3) + WhiteKernel(0.1)
    gp = GaussianProcessRegressor(kernel, random_state=0).fit(x, y)
    start = GaussianProcessRegressor(kernel, optimizer=None).fit(x, y)
    assert gp.log_marginal_likelihood_value_ > start.log_marginal_likelihood_value_
    assert np.allclose(
        gp.log_marginal_likelihood(gp.kernel_.theta), gp.log_marginal_likelihood_value_
    )
    restored = pickle.loads(pickle.dumps(gp))
    np.testing.assert_array_equal(restored.predict(x[:4]), gp.predict(x[:4]))
    copy = clone(kernel)
    assert copy.get_params()["k1__k2__W_std"] == 1.0 and copy is not kernel
    assert [h.name for h in NNGPKernel().hyperparameters] == ["W_std", "b_std"]
    assert np.all(np.isfinite(NNGPKernel().bounds))
