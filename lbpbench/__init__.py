"""lbpbench: a benchmark suite for learned learning protocols."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lbpbench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from lbpbench.hookspecs import hookimpl  # noqa: E402 - the public marker for plugin hook implementations

__all__ = ["__version__", "hookimpl"]
