"""README.md and docs/ publish what the code gives: every marked number is re-rendered from the committed results,
and the committed results are re-trained in part and compared run by run."""

import gzip
import shutil

import pytest
import torch

from empirical import published
from empirical.errors import EmpiricalInputError
from empirical.store import Cell, read_store
from empirical.sweep import run_bundle


def test_every_published_number_is_what_the_code_renders():
    assert published.stale() == []


def test_the_pages_have_markers_for_each_demo_table():
    readme = (published.ROOT / "README.md").read_text(encoding="utf-8")
    for preset in published.PUBLISHED_PRESETS:
        assert f"<!-- begin {preset}:k-table -->" in readme
        assert f"<!-- begin {preset}:b-star-table -->" in readme


def _stored_runs(preset: str, tmp_path):
    folder = tmp_path / preset
    folder.mkdir()
    with gzip.open(published.RESULTS / f"{preset}.db.gz", "rb") as src, open(folder / "sweep.db", "wb") as dst:
        shutil.copyfileobj(src, dst)
    with read_store(folder) as store:
        return store.base_config(), {(r.cell.batch_size, r.cell.seed): r for r in store.runs()}


@pytest.mark.parametrize("preset, batch_size, seeds", [
    ("lqgan", 8, range(8)), ("lqgan", 16, range(8)), ("gauss-mlp", 256, [0]), ("lqgan-amsgrad", 32, range(8)),
    ("lqgan-freshz", 8, range(8)), ("lqgan-adam-tight", 128, range(8)), ("ring8-amsgrad", 64, [0]),
    ("gauss-mlp-sgd", 16, [0])])
def test_committed_results_are_what_the_code_trains(preset, batch_size, seeds, tmp_path):
    # The README's b = 8 and 16 rows of lqgan (where its b* lies), a gauss-mlp cell at its b* and a cell of each
    # other published store, re-trained now on one thread as the sweep's workers train: same status, K and steps.
    base, rows = _stored_runs(preset, tmp_path)
    cells = [Cell(batch_size, seed, 1.0, base.optimizer) for seed in seeds]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_bundle(base, cells)
    finally:
        torch.set_num_threads(threads)
    for cell, result in zip(cells, results, strict=True):
        row = rows[cell.batch_size, cell.seed]
        assert (result.status, result.steps_to_target, result.steps_run) == (
            row.status, row.steps_to_target, row.steps_run), (preset, cell)


def test_a_changed_number_is_named_and_write_fixes_it(tmp_path, monkeypatch):
    page = tmp_path / "page.md"
    page.write_text("b* = <!--v lqgan.b_star-->15<!--/v-->, fit <!--v lqgan.fit.b_star-->5.73<!--/v-->\n")
    monkeypatch.setattr(published, "PAGES", ("page.md",))
    monkeypatch.setattr(published, "FIGURES", {})
    monkeypatch.setattr(published, "CLI_FIGURES", {})
    assert published.stale(tmp_path) == ["page.md: lqgan.b_star"]
    assert published.write(tmp_path) == ["page.md"]
    assert page.read_text() == "b* = <!--v lqgan.b_star-->16<!--/v-->, fit <!--v lqgan.fit.b_star-->5.73<!--/v-->\n"
    assert published.stale(tmp_path) == []


def test_an_unknown_marker_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "page.md").write_text("<!--v no.such.value-->1<!--/v-->\n")
    monkeypatch.setattr(published, "PAGES", ("page.md",))
    with pytest.raises(EmpiricalInputError, match="page.md: unknown value 'no.such.value'"):
        published.stale(tmp_path)


def test_a_value_the_results_cannot_give_is_one_line(tmp_path, monkeypatch):
    # ring8-amsgrad's runs never settle (floor detection off): it has no floor fit, so no b*_floor to publish
    (tmp_path / "page.md").write_text("<!--v ring8-amsgrad.floor.b_star-->1<!--/v-->\n")
    monkeypatch.setattr(published, "PAGES", ("page.md",))
    with pytest.raises(EmpiricalInputError, match=r"page.md: value 'ring8-amsgrad.floor.b_star' cannot be rendered"):
        published.stale(tmp_path)
