"""Real image datasets from local files (CIFAR-10, image folders such as LSUN-Bedroom or CelebA), no downloads.

Every loader returns a uint8 tensor (N, 3, H, W) held in memory: at 32 or 64 px the whole set fits on the training
device, where minibatches are sampled by index and mapped to [-1, 1] with :func:`to_unit_range`. Decoding uses
Pillow (no torchvision). Resizing follows the DCGAN/CelebA convention ``Resize(size)`` + ``CenterCrop(size)`` with
torchvision's default for PIL images, bilinear (antialiased when shrinking), so results match that pipeline.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from empirical.errors import EmpiricalInputError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_DIRNAME = "cifar-10-batches-py"
CIFAR10_SPLITS = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
    "all": tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",),
}
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
PRESET_SIZES = (32, 64)  # the presets' resolutions; any size in MIN_SIZE..MAX_SIZE is accepted
MIN_SIZE, MAX_SIZE = 8, 256
RESAMPLE = Image.Resampling.BILINEAR  # torchvision's Resize default for PIL images (the DCGAN/CelebA pipeline)
PROGRESS_MIN_IMAGES = 1000  # a tqdm bar on stderr above this many images
_CHUNK = 4096  # images handed to the thread pool at a time (bounds the number of pending futures)
_CACHE_FORMAT = "empirical.images/1 bilinear short-side resize + center crop, uint8 NCHW"

_CIFAR_EXPECTED = f"expected the python-pickle folder {CIFAR10_DIRNAME} from {CIFAR10_URL}"
_EXT_LIST = "/".join(IMAGE_EXTENSIONS)


def _one_line(exc: BaseException) -> str:
    """``Type: message`` on one line, for wrapping a library error into an EmpiricalInputError."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not MIN_SIZE <= size <= MAX_SIZE:
        raise EmpiricalInputError(
            f"image size {size!r} is not supported; expected an integer in {MIN_SIZE}..{MAX_SIZE} "
            f"(the presets use {' or '.join(map(str, PRESET_SIZES))})"
        )
    return int(size)


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Scale the short side to ``size`` (bilinear) and cut the central ``size`` x ``size`` square.

    Same arithmetic as torchvision's ``Resize(size)`` + ``CenterCrop(size)`` on a PIL image, so pixels match it.
    """
    w, h = image.size
    if (w, h) == (size, size):
        return image
    if w <= h:
        new_w, new_h = size, int(size * h / w)
    else:
        new_w, new_h = int(size * w / h), size
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), RESAMPLE)
    left = int(round((new_w - size) / 2.0))
    top = int(round((new_h - size) / 2.0))
    return image.crop((left, top, left + size, top + size))


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 images to float32 in [-1, 1] (x / 127.5 - 1), the generator's tanh range; on the input's device."""
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8:
        got = images.dtype if isinstance(images, torch.Tensor) else type(images).__name__
        raise EmpiricalInputError(f"to_unit_range expects a uint8 image tensor, got {got}")
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def _fill_parallel(count: int, fill: Callable[[int], None], desc: str) -> None:
    """Run ``fill(i)`` for i < count on a thread pool (Pillow releases the GIL while decoding and resizing)."""
    from tqdm import tqdm

    with (
        ThreadPoolExecutor() as pool,
        tqdm(total=count, desc=desc, unit="img", disable=count <= PROGRESS_MIN_IMAGES) as bar,
    ):
        for start in range(0, count, _CHUNK):
            stop = min(start + _CHUNK, count)
            for _ in pool.map(fill, range(start, stop)):  # re-raises the first worker error
                bar.update(1)


# --------------------------------------------------------------------------------------------------------- CIFAR-10


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that builds only what a CIFAR-10 batch holds (dicts, lists, bytes, numpy arrays): no code runs."""

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # pickles written by NumPy 1.x (the official files)
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol-5 pickles
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} (a CIFAR-10 batch holds only arrays)")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")  # NumPy 2: same objects, no warning
        return super().find_class(module, name)


def read_cifar10_batch(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file: images uint8 (n, 3, 32, 32) and labels int64 (n,), checked before use.

    The file is a pickled dict with ``data`` uint8 (n, 3072), rows 1024 R then 1024 G then 1024 B, and ``labels``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            batch = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except OSError as exc:
        raise EmpiricalInputError(f"CIFAR-10: cannot read {path} ({_one_line(exc)}); {_CIFAR_EXPECTED}") from exc
    except Exception as exc:  # any unpickling failure: truncated, not a pickle, refused class
        raise EmpiricalInputError(
            f"CIFAR-10: {path} is not a valid batch pickle ({_one_line(exc)}); {_CIFAR_EXPECTED}"
        ) from exc
    if not isinstance(batch, dict):
        raise EmpiricalInputError(f"CIFAR-10: {path} holds a {type(batch).__name__}, not a dict; {_CIFAR_EXPECTED}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise EmpiricalInputError(f"CIFAR-10: {path} has no 'data' or no 'labels' entry; {_CIFAR_EXPECTED}")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise EmpiricalInputError(f"CIFAR-10: {path} has data {got}; expected uint8 (n, 3072) (3x32x32 per row)")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EmpiricalInputError(f"CIFAR-10: {path} has non-integer labels ({_one_line(exc)})") from exc
    if labels.shape != (data.shape[0],) or (labels.size and (labels.min() < 0 or labels.max() > 9)):
        raise EmpiricalInputError(
            f"CIFAR-10: {path} has labels of shape {labels.shape}; expected {data.shape[0]} labels in 0..9"
        )
    return data.reshape(-1, 3, 32, 32), labels


def cifar10_dir(root: str | os.PathLike) -> Path:
    """The ``cifar-10-batches-py`` folder: ``root`` itself or its child of that name."""
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder (extract the archive first)"
        raise EmpiricalInputError(f"CIFAR-10: {root} {what}; {_CIFAR_EXPECTED}")
    for candidate in (root, root / CIFAR10_DIRNAME):
        if any((candidate / name).is_file() for name in CIFAR10_SPLITS["all"]):
            return candidate
    raise EmpiricalInputError(f"CIFAR-10: {root} has no data_batch_1 (nor {CIFAR10_DIRNAME}/); {_CIFAR_EXPECTED}")


def load_cifar10(root: str | os.PathLike, split: str = "train", size: int = 32) -> torch.Tensor:
    """CIFAR-10 images as uint8 (N, 3, size, size): train 50000, test 10000 or all 60000, in file order.

    ``root`` is the ``cifar-10-batches-py`` folder or its parent; ``size`` other than 32 resizes (bilinear).
    """
    if split not in CIFAR10_SPLITS:
        raise EmpiricalInputError(f"CIFAR-10: unknown split {split!r}; expected one of {', '.join(CIFAR10_SPLITS)}")
    size = _check_size(size)
    folder = cifar10_dir(root)
    for name in CIFAR10_SPLITS[split]:
        if not (folder / name).is_file():
            raise EmpiricalInputError(f"CIFAR-10: {folder} has no {name}; {_CIFAR_EXPECTED}")
    data = np.concatenate([read_cifar10_batch(folder / name)[0] for name in CIFAR10_SPLITS[split]])
    if size == 32:
        return torch.from_numpy(np.ascontiguousarray(data))
    out = np.empty((len(data), 3, size, size), dtype=np.uint8)

    def fill(i: int) -> None:
        image = Image.fromarray(np.ascontiguousarray(data[i].transpose(1, 2, 0)))
        out[i] = np.asarray(resize_center_crop(image, size)).transpose(2, 0, 1)

    _fill_parallel(len(data), fill, f"CIFAR-10 -> {size}px")
    return torch.from_numpy(out)


# ----------------------------------------------------------------------------------------------------- image folder


def list_images(root: str | os.PathLike) -> list[Path]:
    """Image files under ``root`` (recursive, extensions case-insensitive, hidden names skipped), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        what = "does not exist" if not root.exists() else "is not a folder"
        raise EmpiricalInputError(f"image folder {root} {what}; expected a folder of {_EXT_LIST} images")
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found


def _decode(path: Path, size: int) -> np.ndarray:
    """One image file as uint8 (3, size, size): RGB, short side resized to ``size``, center-cropped."""
    try:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        return np.asarray(resize_center_crop(rgb, size)).transpose(2, 0, 1)
    except Exception as exc:  # unreadable, truncated or not an image: name the file, one line
        raise EmpiricalInputError(f"image folder: cannot decode {path} ({_one_line(exc)})") from exc


def _cache_key(root: Path, size: int, limit: int | None, total: int, chosen: Sequence[Path]) -> dict:
    names = "\n".join(p.relative_to(root).as_posix() for p in chosen)
    return {
        "format": _CACHE_FORMAT,
        "folder": str(root.resolve()),
        "size": size,
        "limit": limit,
        "file_count": total,
        "names_sha256": hashlib.sha256(names.encode("utf-8", "surrogateescape")).hexdigest(),
    }


def _cache_meta(cache: Path) -> Path:
    return cache.with_name(cache.name + ".json")


def _read_cache(cache: Path, key: dict, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array when its key and shape match; None (decode again) when missing, stale or unreadable."""
    try:
        if json.loads(_cache_meta(cache).read_text(encoding="utf-8")) != key:
            return None
        array = np.load(cache, allow_pickle=False)
    except Exception:
        return None
    return array if array.dtype == np.uint8 and array.shape == shape else None


def _atomic_write(path: Path, write: Callable[[object], object]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_cache(cache: Path, key: dict, array: np.ndarray) -> None:
    """Save the array, then its key: the key file is removed first, so a crash in between leaves a cache miss."""
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        _cache_meta(cache).unlink(missing_ok=True)
        _atomic_write(cache, lambda f: np.save(f, array, allow_pickle=False))
        _atomic_write(_cache_meta(cache), lambda f: f.write(json.dumps(key, indent=1).encode("utf-8")))
    except OSError as exc:
        warnings.warn(f"image cache {cache} not written ({_one_line(exc)})", RuntimeWarning, stacklevel=3)


def load_image_folder(
    root: str | os.PathLike,
    size: int = 64,
    limit: int | None = None,
    cache_path: str | os.PathLike | None = None,
) -> torch.Tensor:
    """Images under ``root`` as uint8 (N, 3, size, size): RGB, bilinear short-side resize, center crop.

    Files in sorted path order (the first ``limit`` if given); ``cache_path`` (.npy) skips decoding on the next run.
    """
    size = _check_size(size)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 1):
        raise EmpiricalInputError(f"image folder: limit {limit!r} is not a positive integer")
    cache = Path(cache_path) if cache_path is not None else None
    if cache is not None and cache.is_dir():
        raise EmpiricalInputError(f"image cache {cache} is a folder; expected a .npy file path")
    root = Path(root)
    paths = list_images(root)
    if not paths:
        raise EmpiricalInputError(f"image folder {root} has no images ({_EXT_LIST}, searched recursively)")
    chosen = paths[:limit] if limit is not None else paths
    shape = (len(chosen), 3, size, size)
    key = _cache_key(root, size, limit, len(paths), chosen) if cache is not None else None
    if cache is not None and (cached := _read_cache(cache, key, shape)) is not None:
        return torch.from_numpy(cached)
    out = np.empty(shape, dtype=np.uint8)

    def fill(i: int) -> None:
        out[i] = _decode(chosen[i], size)

    _fill_parallel(len(chosen), fill, f"decoding {root.name or root}")
    if cache is not None:
        _write_cache(cache, key, out)
    return torch.from_numpy(out)
