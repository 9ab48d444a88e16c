"""The scikit-learn estimators, judged by scikit-learn's own check_estimator."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import need_module

need_module("sklearn", "pip install 'fastnn[sklearn]'", module_level=True)

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastnn.sklearn import MLPClassifier, MLPRegressor  # noqa: E402


@parametrize_with_checks([MLPClassifier(max_iter=100), MLPRegressor(max_iter=100)])
def test_scikit_learn_accepts_the_estimators(estimator, check):
    """Every check of sklearn's check_estimator, none declared as an expected failure
    (sklearn's own MLPClassifier and MLPRegressor declare none)."""
    check(estimator)


def test_string_labels_pipelines_search_and_pickles():
    from fastnn.datasets import load_digits

    X, y = load_digits(scale=False)
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    labels = names[y][:600]
    X = X[:600]
    pipe = make_pipeline(
        StandardScaler(),
        MLPClassifier(
            hidden_layer_sizes=(32,), max_iter=50, learning_rate_init=0.01, random_state=0
        ),
    )
    pipe.fit(X, labels)
    assert set(pipe.predict(X[:20])) <= set(names) and pipe.score(X, labels) > 0.9
    assert cross_val_score(clone(pipe), X, labels, cv=3).mean() > 0.8
    search = GridSearchCV(
        MLPClassifier(max_iter=20, random_state=0),
        {"hidden_layer_sizes": [(8,), (32,)], "alpha": [1e-4, 1e-2]},
        cv=2,
        n_jobs=2,
    )
    search.fit(X / 16, labels)
    assert search.best_params_["hidden_layer_sizes"] in [(8,), (32,)]
    estimator = search.best_estimator_
    blob = pickle.dumps(estimator)
    assert b"fastnn.model" not in blob and b"fastnn.backends" not in blob  # plain values
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.predict_proba(X / 16), estimator.predict_proba(X / 16))
    assert estimator.loss_curve_ and estimator.n_features_in_ == 64


def test_fastnn_parameters_and_early_stopping():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = X @ [1.0, -2.0, 0.5, 0.0, 3.0]
    reg = MLPRegressor(
        hidden_layer_sizes=(16,),
        max_iter=300,
        early_stopping=True,
        n_iter_no_change=5,
        optimizer="adam",
        learning_rate_init=0.01,
        dropout=0.1,
        batch_norm=True,
        random_state=0,
    ).fit(X, y)
    assert reg.n_iter_ < 300 and reg.score(X, y) > 0.9


def test_pandas_is_there_for_the_feature_name_checks():
    """check_estimator checks feature_names_in_ with DataFrames only when pandas imports
    (required in CI, so those checks never skip there)."""
    need_module("pandas", "pip install pandas")


def test_importing_fastnn_imports_no_sklearn():
    import subprocess
    import sys

    code = "import sys, fastnn; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_estimator_carries_its_preprocessing():
    from fastnn.datasets import load_digits

    X, y = load_digits(scale=False)
    clf = MLPClassifier(
        hidden_layer_sizes=(32,),
        max_iter=40,
        learning_rate_init=0.01,
        preprocess="minmax",
        random_state=0,
    ).fit(X[:600], y[:600])
    assert clf._layers[0][0] == "Rescale" and clf.score(X[600:900], y[600:900]) > 0.85
    with pytest.raises(ValueError, match="preprocess must be"):
        MLPClassifier(preprocess="robust").fit(X[:50], y[:50])
