"""Dataset CSVs: every bad input is one DatasetInvalid naming file, line and column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from model_export.dataset import WindowSpec, load_dataset
from model_export.errors import DatasetInvalid

CASES = Path(__file__).parent / "cases"
NAB = Path("/work/shared/data/nab/data/realKnownCause")


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.iterdir() if p.is_dir()))
def test_bad_dataset_is_refused_with_its_location(case: str) -> None:
    path = CASES / case / "input.csv"
    expected = (CASES / case / "expected_error.txt").read_text(encoding="utf-8").strip()
    with pytest.raises(DatasetInvalid) as info:
        load_dataset(path, WindowSpec())
    assert str(info.value) == expected.replace("<file>", str(path))
    assert info.value.path == str(path)


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalid, match=r"nope\.csv: file not found"):
        load_dataset(tmp_path / "nope.csv")


def test_location_attributes_point_at_the_cell() -> None:
    with pytest.raises(DatasetInvalid) as info:
        load_dataset(CASES / "text_in_numeric" / "input.csv")
    assert (info.value.line, info.value.column) == (4, "temp_c")


def test_iso_and_epoch_timestamps_load(tmp_path: Path) -> None:
    path = tmp_path / "ok.csv"
    path.write_text(
        "timestamp, a ,b\n"
        "2024-01-01T00:00:00Z,1,2\n"
        "\n"
        "2024-01-01T00:01:00+00:00,1.5,2.5\n"
        "1704067320,2e0, -3\n",
        encoding="utf-8",
    )
    ds = load_dataset(path)
    assert ds.channels == ("a", "b")
    assert ds.timestamps.tolist() == [1704067200.0, 1704067260.0, 1704067320.0]
    assert ds.values.tolist() == [[1.0, 2.0], [1.5, 2.5], [2.0, -3.0]]
    assert ds.sample_period_s == 60.0


def test_clock_change_steps_are_kept_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "dst.csv"
    path.write_text(
        "timestamp,value\n"
        "2014-01-07 02:50:00,1\n"
        "2014-01-07 02:55:00,2\n"
        "2014-01-07 02:00:00,3\n"
        "2014-01-07 02:00:00,4\n",
        encoding="utf-8",
    )
    ds = load_dataset(path)
    assert ds.values[:, 0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert ds.clock_steps == (4, 5)


@pytest.mark.skipif(not NAB.is_dir(), reason=f"NAB data not present at {NAB}")
def test_nab_files_load(tmp_path: Path) -> None:
    for path in sorted(NAB.glob("*.csv")):
        ds = load_dataset(shutil.copy(path, tmp_path / path.name), WindowSpec())
        assert ds.channels == ("value",)
        assert ds.rows > 1000
