"""Shared fixtures (keep this file small: room-specific fixtures live next to their tests)."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest
import torch

from lbpbench import registry

REPO = Path(__file__).resolve().parents[1]

# inductor's on-disk cache does not key on a forced instruction set: kernels compiled under
# ATEN_CPU_CAPABILITY=avx2 abort (or return NaN) when a later default run loads them, and the other
# way round. A forced-ISA test run therefore compiles into a cache of its own (.ci/run does the same).
if os.environ.get("ATEN_CPU_CAPABILITY") and not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
    ISA_CACHE = f"torchinductor_{getpass.getuser()}_{os.environ['ATEN_CPU_CAPABILITY']}"
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(tempfile.gettempdir()) / ISA_CACHE)

SIGNSGD_SRC = REPO / "plugins" / "lbpbench-signsgd"


@pytest.fixture(autouse=True)
def one_sweep_worker(monkeypatch):
    """Sweeps in tests run in-process unless a test asks otherwise: `--workers auto` (the CLI default)
    depends on the machine's load, which a test must not."""
    monkeypatch.setenv("LBPBENCH_WORKERS", "1")


@pytest.fixture
def isolated_plugins(tmp_path, monkeypatch):
    """A clean plugin environment: a working directory without ./plugins, no LBPBENCH_* plugin
    variables (restored afterwards even if the code under test sets them), an empty registry cache.
    Returns the working directory."""
    for var in (registry.ENV_PLUGINS_DIR, registry.ENV_LOAD_PLUGINS, registry.ENV_STRICT):
        monkeypatch.setenv(var, "")  # records the original value, so teardown restores it
        monkeypatch.delenv(var)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    registry.clear_cache()
    yield cwd
    registry.clear_cache()


@pytest.fixture
def signsgd_dist(tmp_path, monkeypatch):
    """Make the example package plugins/lbpbench-signsgd discoverable the way pip would: a
    ``*.dist-info`` folder (METADATA + entry_points.txt built from the package's own pyproject.toml)
    next to the package, on sys.path. importlib.metadata then finds it like any installed
    distribution. Returns the site folder."""
    meta = tomllib.loads((SIGNSGD_SRC / "pyproject.toml").read_text())["project"]
    site = tmp_path / "site"
    pkg = "lbpbench_signsgd"
    shutil.copytree(SIGNSGD_SRC / pkg, site / pkg)
    dist_info = site / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n"
    )
    lines = [f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items())
             for group, eps in meta["entry-points"].items()]
    (dist_info / "entry_points.txt").write_text("\n".join(lines))
    monkeypatch.delitem(sys.modules, pkg, raising=False)
    monkeypatch.syspath_prepend(str(site))  # also invalidates importlib's caches
    yield site
    sys.modules.pop(pkg, None)


@pytest.fixture
def one_thread():
    """One torch thread, so a numeric trajectory is the same on every machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config: pytest.Config) -> None:
    """Let subprocesses of the tests see Ctrl-C. A suite started as a background job of a
    non-interactive shell (`cmd &`, CI scripts) inherits SIGINT ignored, and an ignored signal
    stays ignored across exec: every `lbpbench` the Ctrl-C tests start would ignore their SIGINT.
    A handler (unlike SIG_IGN) is reset to the default on exec, so the children start normal."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
