"""Real-image loaders on tiny datasets in tmp_path: CIFAR-10 pickles, image folders, the cache, one-line errors."""

import pickle
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from empirical import images
from empirical.errors import EmpiricalInputError
from empirical.images import (
    list_images,
    load_cifar10,
    load_image_folder,
    read_cifar10_batch,
    resize_center_crop,
    to_unit_range,
)

PER_BATCH = 7
BATCHES = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]


# ----------------------------------------------------------------------------------------------------------- CIFAR


def cifar_images(batch_index: int) -> np.ndarray:
    """(7, 3, 32, 32): each image uniform per plane, R = 10 * batch + k, G = 200 + k, B = batch."""
    planes = np.zeros((PER_BATCH, 3, 32, 32), dtype=np.uint8)
    for k in range(PER_BATCH):
        planes[k] = np.array([10 * batch_index + k, 200 + k, batch_index], dtype=np.uint8)[:, None, None]
    if batch_index == 0:
        planes[0] = 0
        planes[0, 0] = 255  # pure red
        planes[1, 0] = (np.arange(1024) % 256).reshape(32, 32)  # R plane row-major: value = (32 y + x) mod 256
    return planes


def write_batch(path, data, labels, protocol=pickle.DEFAULT_PROTOCOL, str_keys=False):
    batch = {b"batch_label": b"fake", b"labels": labels, b"data": data, b"filenames": [b"x.png"] * len(labels)}
    if str_keys:
        batch = {k.decode(): v for k, v in batch.items()}
    path.write_bytes(pickle.dumps(batch, protocol=protocol))


@pytest.fixture
def cifar_root(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b, name in enumerate(BATCHES):
        data = cifar_images(b).reshape(PER_BATCH, 3072)
        write_batch(folder / name, data, [(b + k) % 10 for k in range(PER_BATCH)], protocol=2 if b % 2 else 5)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2))
    return folder


def test_cifar_chw_layout(cifar_root):
    x = load_cifar10(cifar_root, "train")
    assert x.dtype == torch.uint8 and x.shape == (5 * PER_BATCH, 3, 32, 32) and x.is_contiguous()
    assert (x[0, 0] == 255).all() and (x[0, 1:] == 0).all()  # the R plane comes out as the red channel
    y, xx = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    assert np.array_equal(x[1, 0].numpy(), (32 * y + xx) % 256)  # planes are row-major (H, W)
    assert (x[2, 1] == 202).all() and (x[2, 2] == 0).all()


def test_cifar_splits_order_and_labels(cifar_root):
    train, test, both = (load_cifar10(cifar_root, split) for split in ("train", "test", "all"))
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH and len(both) == 6 * PER_BATCH
    assert torch.equal(both, torch.cat([train, test]))
    assert [int(v) for v in train[PER_BATCH::PER_BATCH, 2, 0, 0]] == [1, 2, 3, 4]  # batches 1..5 in order
    assert (test[:, 2] == 5).all() and [int(v) for v in test[:, 0, 0, 0]] == [50 + k for k in range(PER_BATCH)]
    data, labels = read_cifar10_batch(cifar_root / "data_batch_3")
    assert data.shape == (PER_BATCH, 3, 32, 32) and labels.dtype == np.int64
    assert labels.tolist() == [(2 + k) % 10 for k in range(PER_BATCH)]


def test_cifar_parent_folder_and_resize(cifar_root):
    assert torch.equal(load_cifar10(cifar_root.parent, "test"), load_cifar10(cifar_root, "test"))
    big = load_cifar10(cifar_root.parent, "train", size=64)
    assert big.shape == (5 * PER_BATCH, 3, 64, 64)
    assert (big[0, 0] == 255).all() and (big[0, 1:] == 0).all()  # a uniform image stays uniform
    assert (big[3] == load_cifar10(cifar_root)[3, :, :1, :1]).all()


def test_cifar_numpy1_pickle_and_str_keys(tmp_path):
    data = cifar_images(0).reshape(PER_BATCH, 3072)
    raw = pickle.dumps({b"data": data, b"labels": list(range(PER_BATCH))}, protocol=2)
    assert b"numpy._core.multiarray\n" in raw
    (tmp_path / "data_batch_1").write_bytes(raw.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    write_batch(tmp_path / "test_batch", data, list(range(PER_BATCH)), str_keys=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the NumPy 1.x name loads without a deprecation warning
        first, labels = read_cifar10_batch(tmp_path / "data_batch_1")
    assert np.array_equal(first, cifar_images(0)) and labels.tolist() == list(range(PER_BATCH))
    assert torch.equal(load_cifar10(tmp_path, "test"), torch.from_numpy(cifar_images(0)))


class Evil:
    def __reduce__(self):
        return (print, ("this must not run",))


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"not a pickle at all", "not a valid batch pickle"),
        (pickle.dumps({b"data": np.zeros((7, 3072), np.uint8), b"labels": [0] * 7})[:40], "not a valid batch pickle"),
        (pickle.dumps({b"data": Evil(), b"labels": []}), "refusing to load builtins.print"),
        (pickle.dumps([1, 2, 3]), "holds a list"),
        (pickle.dumps({b"labels": [0]}), "no 'data'"),
        (pickle.dumps({b"data": np.zeros((7, 3000), np.uint8), b"labels": [0] * 7}), "uint8 (7, 3000)"),
        (pickle.dumps({b"data": np.zeros((7, 3072), np.float32), b"labels": [0] * 7}), "float32 (7, 3072)"),
        (pickle.dumps({b"data": np.zeros((7, 3072), np.uint8), b"labels": [0] * 6}), "expected 7 labels in 0..9"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "expected 1 labels in 0..9"),
        (pickle.dumps({b"data": np.zeros((1, 3072), np.uint8), b"labels": ["a"]}), "non-integer labels"),
    ],
)
def test_cifar_malformed_batch(cifar_root, capsys, content, expected):
    (cifar_root / "data_batch_2").write_bytes(content)
    with pytest.raises(EmpiricalInputError) as err:
        load_cifar10(cifar_root.parent)
    message = str(err.value)
    assert str(cifar_root / "data_batch_2") in message and expected in message and "\n" not in message
    assert "must not run" not in capsys.readouterr().out
    load_cifar10(cifar_root, "test")  # the other split is still fine


def test_cifar_missing(tmp_path, cifar_root):
    cases = {
        tmp_path / "nowhere": "does not exist",
        tmp_path / "empty": "has no data_batch_1",
        tmp_path / "archive.tar.gz": "is not a folder",
    }
    (tmp_path / "empty").mkdir()
    (tmp_path / "archive.tar.gz").write_bytes(b"\x1f\x8b")
    for path, expected in cases.items():
        with pytest.raises(EmpiricalInputError, match="cifar-10-batches-py from https://www.cs.toronto.edu") as err:
            load_cifar10(path)
        assert str(path) in str(err.value) and expected in str(err.value)
    (cifar_root / "data_batch_4").unlink()
    with pytest.raises(EmpiricalInputError, match="has no data_batch_4") as err:
        load_cifar10(cifar_root.parent, "all")
    assert str(cifar_root) in str(err.value)
    assert len(load_cifar10(cifar_root, "test")) == PER_BATCH
    with pytest.raises(EmpiricalInputError, match="unknown split 'val'"):
        load_cifar10(cifar_root, "val")
    for size in (4, 300, 32.0, True):
        with pytest.raises(EmpiricalInputError, match="8..256"):
            load_cifar10(cifar_root, "test", size=size)


# ---------------------------------------------------------------------------------------------------- image folder

RED, BLUE, GREEN = (255, 0, 0), (0, 0, 255), (0, 255, 0)


def striped(width, height, horizontal, color, background):
    """An image whose central 140/300 band (across the long side) has ``color`` and the rest ``background``."""
    arr = np.empty((height, width, 3), dtype=np.uint8)
    arr[:] = background
    long_side = width if horizontal else height
    lo, hi = long_side * 80 // 300, long_side * 220 // 300
    if horizontal:
        arr[:, lo:hi] = color
    else:
        arr[lo:hi] = color
    return Image.fromarray(arr)


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "faces"
    (root / "b" / "c").mkdir(parents=True)
    (root / "a").mkdir()
    (root / ".thumbs").mkdir()
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "b" / "c" / "noise.PNG")  # written first, sorted in the middle
    striped(300, 100, True, RED, BLUE).save(root / "a" / "wide.png")
    striped(90, 270, False, GREEN, BLUE).save(root / "a" / "tall.JPG", quality=95)
    Image.fromarray(rng.integers(0, 256, size=(64, 67, 3), dtype=np.uint8)).save(root / "odd.bmp")
    Image.new("L", (50, 40), 77).save(root / "gray.webp", lossless=True)
    Image.new("RGBA", (40, 50), (10, 20, 30, 128)).save(root / "b" / "rgba.png")
    (root / "notes.txt").write_text("not an image")
    Image.new("RGB", (8, 8)).save(root / ".thumbs" / "hidden.png")
    Image.new("RGB", (8, 8)).save(root / "._appledouble.jpg")
    return root, noise


NAMES = ["a/tall.JPG", "a/wide.png", "b/c/noise.PNG", "b/rgba.png", "gray.webp", "odd.bmp"]


def test_folder_listing_and_shapes(folder):
    root, noise = folder
    assert [p.relative_to(root).as_posix() for p in list_images(root)] == NAMES
    x = load_image_folder(root, size=64)
    assert x.dtype == torch.uint8 and x.shape == (len(NAMES), 3, 64, 64)
    assert np.array_equal(x[2].numpy(), noise.transpose(2, 0, 1))  # PNG, no resize: exact
    assert (x[3].permute(1, 2, 0) == torch.tensor([10, 20, 30], dtype=torch.uint8)).all()  # RGBA -> RGB
    assert (x[4] == 77).all()  # grayscale -> three equal channels
    odd = np.asarray(Image.open(root / "odd.bmp")).transpose(2, 0, 1)
    assert np.array_equal(x[5].numpy(), odd[:, :, 2:66])  # 67 wide: crop from round(1.5) = 2, as torchvision
    assert torch.equal(load_image_folder(str(root), size=64), x)  # deterministic
    assert load_image_folder(root, size=32).shape == (len(NAMES), 3, 32, 32)


def test_center_crop_keeps_the_center(folder):
    root, _ = folder
    for size in (32, 64):
        x = load_image_folder(root, size=size, limit=2).int()
        tall, wide = x[0], x[1]
        assert (wide[0] >= 250).all() and (wide[1:] <= 5).all(), "wide image: the red center stripe fills the crop"
        assert (tall[1] >= 240).all() and (tall[[0, 2]] <= 15).all(), "tall image: the green center band fills it"
    source = striped(140, 100, True, RED, BLUE)  # short side already 100: a crop only, from x = 20
    assert np.array_equal(np.asarray(resize_center_crop(source, 100)), np.asarray(source)[:, 20:120])


def test_limit_and_chunking(folder, monkeypatch):
    root, _ = folder
    full = load_image_folder(root, size=32)
    assert torch.equal(load_image_folder(root, size=32, limit=2), full[:2])
    assert torch.equal(load_image_folder(root, size=32, limit=100), full)
    monkeypatch.setattr(images, "_CHUNK", 4)
    assert torch.equal(load_image_folder(root, size=32), full)
    for limit in (0, -1, 2.5, True):
        with pytest.raises(EmpiricalInputError, match="limit"):
            load_image_folder(root, limit=limit)


def test_cache_round_trip(folder, tmp_path, monkeypatch):
    root, _ = folder
    cache = tmp_path / "cache" / "faces64.npy"
    fresh = load_image_folder(root, size=64, cache_path=cache)
    assert cache.is_file() and cache.with_name("faces64.npy.json").is_file()
    assert sorted(p.name for p in cache.parent.iterdir()) == ["faces64.npy", "faces64.npy.json"]  # no temp left

    def no_decode(*args):
        raise AssertionError("decoded despite a valid cache")

    with monkeypatch.context() as m:
        m.setattr(images, "_decode", no_decode)
        assert torch.equal(load_image_folder(root, size=64, cache_path=str(cache)), fresh)
        for change in ({"size": 32}, {"limit": 3}):  # another key: a miss, which would decode
            with pytest.raises(AssertionError, match="despite"):
                load_image_folder(root, **{"size": 64, **change}, cache_path=cache)
        Image.new("RGB", (9, 9)).save(root / "zz.png")  # a new file changes the file count
        with pytest.raises(AssertionError, match="despite"):
            load_image_folder(root, size=64, cache_path=cache)
    grown = load_image_folder(root, size=64, cache_path=cache)
    assert torch.equal(grown[:-1], fresh) and len(grown) == len(fresh) + 1
    cache.write_bytes(b"corrupt")  # a damaged cache is rebuilt, not trusted
    assert torch.equal(load_image_folder(root, size=64, cache_path=cache), grown)
    assert torch.equal(torch.from_numpy(np.load(cache)), grown)
    with pytest.raises(EmpiricalInputError, match="is a folder") as err:
        load_image_folder(root, cache_path=tmp_path)
    assert str(tmp_path) in str(err.value)


def test_folder_errors(tmp_path, folder):
    root, _ = folder
    missing, empty = tmp_path / "missing", tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "readme.txt").write_text("no images here")
    for path, expected in ((missing, "does not exist"), (empty, "has no images (.png/.jpg"), (root / "gray.webp", "")):
        with pytest.raises(EmpiricalInputError) as err:
            load_image_folder(path)
        assert str(path) in str(err.value) and expected in str(err.value)
    png = (root / "b" / "c" / "noise.PNG").read_bytes()
    for path, content in ((root / "b" / "broken.jpg", b"not a jpeg"), (root / "a" / "truncated.png", png[:300])):
        path.write_bytes(content)
        with pytest.raises(EmpiricalInputError) as err:
            load_image_folder(root)
        assert f"cannot decode {path}" in str(err.value) and "\n" not in str(err.value)
        path.unlink()
    assert len(load_image_folder(root, size=16)) == len(NAMES)


def test_to_unit_range():
    x = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8)
    y = to_unit_range(x)
    assert y.dtype == torch.float32 and y[0] == -1 and y[-1] == 1 and (y[1:] > y[:-1]).all()
    assert torch.allclose(y, x.double().div(127.5).sub(1).float(), atol=1e-6)
    with pytest.raises(EmpiricalInputError, match="uint8"):
        to_unit_range(y)
