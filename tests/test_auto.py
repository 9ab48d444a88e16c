"""backend="auto": the fastest backend of a measured table, and the reason given."""

from __future__ import annotations

import json

import pytest
from conftest import skip_unless_required

import fastnn
from fastnn.backends import unavailable_reason
from fastnn.backends.auto import DEFAULT_TABLE, Auto, choose, load_table
from fastnn.benchmarking.auto_table import measure_table, write_table
from fastnn.cli import main


def _table(rows):
    return {"path": "test-table.json", "rows": rows}


def _row(parameters, batch, dtype="float32", **rates):
    return {"parameters": parameters, "batch": batch, "dtype": dtype, "samples_per_s": rates}


TABLE = _table(
    [
        _row(10_000, 16, numpy=100.0, numba=300.0),  # small nets: numba
        _row(1_000_000, 1024, numpy=200.0, numba=150.0),  # large nets: numpy
        _row(10_000, 16, dtype="float64", numpy=500.0, numba=100.0),
    ]
)


def test_the_nearest_measured_cell_decides():
    small = choose(12_000, 32, "float32", ["numpy", "numba"], TABLE)
    assert small.name == "numba"
    assert "3.00x numpy" in small.reason and "10,000 parameters at batch 16" in small.reason
    assert "12,000 parameters at batch 32" in small.reason and "test-table.json" in small.reason
    assert choose(2_000_000, 512, "float32", ["numpy", "numba"], TABLE).name == "numpy"


def test_rows_of_the_models_dtype_decide():
    assert choose(12_000, 32, "float64", ["numpy", "numba"], TABLE).name == "numpy"


def test_a_backend_the_table_never_measured_is_not_picked_and_is_named():
    choice = choose(12_000, 32, "float32", ["numpy", "numba", "cupy"], TABLE)
    assert choice.name == "numba" and "not measured there: cupy" in choice.reason


def test_only_the_available_backends_compete():
    choice = choose(12_000, 32, "float32", ["numpy"], TABLE)
    assert (choice.name, choice.reason) == ("numpy", "auto: numpy, the only backend available here")
    unmeasured = choose(12_000, 32, "float32", ["cupy", "numpy"], _table([_row(1, 1, numba=1.0)]))
    assert unmeasured.name == "numpy" and "measured none of" in unmeasured.reason


def test_an_unreadable_table_is_a_clear_error(tmp_path):
    bad = tmp_path / "table.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read its table .*table.json"):
        load_table(bad)
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(ValueError, match="no measured rows"):
        load_table(bad)


@pytest.mark.parametrize("fastest", ["numpy", "numba"])
def test_a_model_goes_where_the_table_says_and_says_why(tmp_path, monkeypatch, fastest):
    reason = unavailable_reason(fastest)
    if reason is not None:
        skip_unless_required(fastest, f"[{fastest}] {reason}")
    slow = "numba" if fastest == "numpy" else "numpy"
    path = tmp_path / "table.json"
    path.write_text(json.dumps({"rows": [_row(2_000, 32, **{fastest: 2.0, slow: 1.0})]}))
    monkeypatch.setenv("FASTNN_AUTO_TABLE", str(path))
    model = fastnn.MLP([20, 50, 3], loss="cross_entropy", backend="auto", seed=0)
    assert model.backend.name == fastest
    assert model.backend_choice.startswith(f"auto: {fastest}")
    assert "1,203 parameters at batch 32" in model.backend_choice  # 20*50 + 50 + 50*3 + 3
    wide = fastnn.MLP([20, 50, 3], loss="cross_entropy", backend=Auto(batch_size=256), seed=0)
    assert "at batch 256" in wide.backend_choice
    assert fastnn.MLP([20, 3], loss="cross_entropy", backend="numpy").backend_choice is None


def test_the_shipped_table_measures_numpy_and_numba():
    table = load_table(DEFAULT_TABLE)
    measured = {name for row in table["rows"] for name in row["samples_per_s"]}
    assert measured == {"numpy", "numba"}  # so auto never picks cupy from it (README)
    assert len({(r["parameters"], r["batch"]) for r in table["rows"]}) >= 16


def test_bench_writes_a_table_auto_reads(tmp_path):
    table = measure_table(["numpy"], networks=((6, 5, 3),), batches=(4, 8), min_time=0.01)
    path = tmp_path / "table.json"
    write_table(table, path)
    rows = load_table(path)["rows"]
    assert [(r["parameters"], r["batch"]) for r in rows] == [(53, 4), (53, 8)]
    assert rows[0]["samples_per_s"]["numpy"] > 0


def test_fastnn_train_picks_automatically_and_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--data", "xor", "--epochs", "2", "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "backend: auto: " in printed
