"""The SPE service; its version is the installed distribution's (package metadata)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("spe")
except PackageNotFoundError:  # a source tree on sys.path that was never installed
    __version__ = "0+unknown"
