"""A strict reader for the IDX format of MNIST / Fashion-MNIST, so full datasets run from a folder.

Format (big-endian): two zero bytes, one dtype code, one byte ``ndim``, then ``ndim`` uint32 sizes,
then the data in C order. Every error names the offending file, because a user pointing
``--data-dir`` at the wrong folder should learn which file is wrong, not see a numpy traceback.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IDX_DTYPES", "find_idx_file", "read_idx", "write_idx"]

# IDX type code -> big-endian numpy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(path: Path) -> bytes:
    """Read the raw (decompressed) content; gzip is detected by its magic bytes, not only the suffix."""
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the IDX file ({exc.strerror or exc})") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc
    if path.suffix == ".gz":
        raise ValueError(f"{path}: has a .gz suffix but is not gzip data")
    return raw


def read_idx(path: str | os.PathLike[str], expected_ndim: int | None = None) -> np.ndarray:
    """Read one IDX file (plain or gzip) into a native-endian numpy array, validating every header field.

    ``expected_ndim`` (3 for images, 1 for labels) turns a mixed-up file pair into a clear error.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: too short for an IDX header ({len(data)} bytes)")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    magic = int.from_bytes(data[:4], "big")
    if zero != 0 or code not in IDX_DTYPES:
        raise ValueError(f"{path}: bad IDX magic number 0x{magic:08X} (expected 0x0000TTDD, TT a type code)")
    if ndim == 0:
        raise ValueError(f"{path}: bad IDX magic number 0x{magic:08X} (zero dimensions)")
    if expected_ndim is not None and ndim != expected_ndim:
        want = (code << 8) | expected_ndim
        raise ValueError(
            f"{path}: IDX magic number 0x{magic:08X} means {ndim} dimensions; expected {expected_ndim} "
            f"(magic 0x{want:08X})"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: a forged header cannot overflow
    body = len(data) - header
    if body < expected:
        raise ValueError(
            f"{path}: truncated IDX data: header says shape {shape} ({expected} bytes), found {body}"
        )
    if body > expected:
        raise ValueError(
            f"{path}: {body - expected} unexpected trailing bytes after IDX data of shape {shape}"
        )
    arr = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header)
    return arr.reshape(shape).astype(dtype.newbyteorder("="))


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip when the name ends in .gz); used by tests and tools."""
    path = Path(path)
    array = np.asarray(array)
    key = (array.dtype.kind, array.dtype.itemsize)
    codes = [c for c, d in IDX_DTYPES.items() if (d.kind, d.itemsize) == key]
    if not codes:
        raise ValueError(f"cannot write dtype {array.dtype} as IDX")
    code = codes[0]
    dt = IDX_DTYPES[code]
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"cannot write a {array.ndim}-dimensional array as IDX")
    payload = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload += np.ascontiguousarray(array, dtype=dt).tobytes()
    path.write_bytes(gzip.compress(payload, mtime=0) if path.suffix == ".gz" else payload)
    return path


def find_idx_file(data_dir: str | os.PathLike[str], stem: str) -> Path:
    """Locate ``stem`` (e.g. ``train-images-idx3-ubyte``) in ``data_dir``, plain or ``.gz``.

    Also accepts the ``train-images.idx3-ubyte`` spelling some mirrors use.
    """
    folder = Path(data_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"data directory not found: {folder}")
    alt = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", alt, alt + ".gz"):
        candidate = folder / name
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"IDX file not found: {folder / stem} (also tried {stem}.gz)")
