"""The release version of this installation, as the package metadata records it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jbcalling")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
