"""The version of this distribution (read by pyproject.toml too)."""

__version__ = "0.1.0"
"""The version of the installed aiopersonalize-events distribution (PEP 440)."""
