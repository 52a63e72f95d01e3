"""IDX reader: round trips on tiny plain and gzip files, and clear errors naming the bad file."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from lbpbench.tasks.idx import find_idx_file, read_idx, write_idx


@pytest.fixture
def images() -> np.ndarray:
    return np.arange(3 * 4 * 5, dtype=np.uint8).reshape(3, 4, 5)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_round_trip_images_and_labels(tmp_path, images, suffix):
    img = write_idx(tmp_path / f"img-idx3-ubyte{suffix}", images)
    lab = write_idx(tmp_path / f"lab-idx1-ubyte{suffix}", np.array([7, 0, 9], dtype=np.uint8))
    got = read_idx(img, expected_ndim=3)
    assert got.dtype == np.uint8 and got.shape == (3, 4, 5)
    np.testing.assert_array_equal(got, images)
    np.testing.assert_array_equal(read_idx(lab, expected_ndim=1), [7, 0, 9])


def test_header_is_the_mnist_magic(tmp_path, images):
    raw = write_idx(tmp_path / "img", images).read_bytes()
    assert raw[:4] == bytes.fromhex("00000803")
    assert struct.unpack(">3I", raw[4:16]) == (3, 4, 5)
    assert write_idx(tmp_path / "lab", np.zeros(2, np.uint8)).read_bytes()[:4] == bytes.fromhex("00000801")


def test_hand_written_file(tmp_path):
    """A file written byte by byte (not with write_idx) reads back as the spec says."""
    path = tmp_path / "hand-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes.fromhex("00000801") + struct.pack(">I", 4) + bytes([1, 2, 3, 255])))
    np.testing.assert_array_equal(read_idx(path), [1, 2, 3, 255])


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_other_idx_dtypes_big_endian(tmp_path, dtype):
    arr = (np.arange(6).reshape(2, 3) - 2).astype(dtype)
    got = read_idx(write_idx(tmp_path / "x.idx", arr))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(got, arr)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope-idx3-ubyte"):
        read_idx(tmp_path / "nope-idx3-ubyte")


@pytest.mark.parametrize("magic", ["00000903", "01000803", "00000703", "00000800", "08030000"])
def test_wrong_magic_names_the_file(tmp_path, magic):
    path = tmp_path / "bad-magic"
    path.write_bytes(bytes.fromhex(magic) + b"\x00" * 64)
    with pytest.raises(ValueError, match="bad-magic"):
        read_idx(path)


def test_wrong_ndim_for_expected_kind(tmp_path, images):
    path = write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.*expected 1"):
        read_idx(path, expected_ndim=1)


@pytest.mark.parametrize("cut", [1, 3, 6, 15, 16 + 59])
def test_truncated_file_names_it(tmp_path, images, cut):
    raw = write_idx(tmp_path / "full", images).read_bytes()
    path = tmp_path / "short-idx3-ubyte"
    path.write_bytes(raw[:cut])
    with pytest.raises(ValueError, match="short-idx3-ubyte") as info:
        read_idx(path)
    assert "trunc" in str(info.value) or "too short" in str(info.value)


def test_trailing_bytes_rejected(tmp_path, images):
    raw = write_idx(tmp_path / "full", images).read_bytes()
    path = tmp_path / "long-idx3-ubyte"
    path.write_bytes(raw + b"\x00\x00")
    with pytest.raises(ValueError, match="long-idx3-ubyte.*trailing"):
        read_idx(path)


def test_truncated_gzip_names_it(tmp_path, images):
    raw = write_idx(tmp_path / "full.gz", images).read_bytes()
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="cut-idx3-ubyte.gz"):
        read_idx(path)


def test_gz_suffix_on_plain_data_is_an_error(tmp_path, images):
    path = tmp_path / "fake.gz"
    path.write_bytes(write_idx(tmp_path / "plain", images).read_bytes())
    with pytest.raises(ValueError, match="fake.gz"):
        read_idx(path)


def test_find_idx_file_plain_gz_and_missing(tmp_path, images):
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    assert find_idx_file(tmp_path, "train-images-idx3-ubyte").name == "train-images-idx3-ubyte.gz"
    assert find_idx_file(tmp_path, "t10k-images-idx3-ubyte").name == "t10k-images-idx3-ubyte"
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte"):
        find_idx_file(tmp_path, "train-labels-idx1-ubyte")
    with pytest.raises(FileNotFoundError, match="data directory"):
        find_idx_file(tmp_path / "absent", "train-images-idx3-ubyte")
