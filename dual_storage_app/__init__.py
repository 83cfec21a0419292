"""dual-storage: a private internal store and a presignable external store for Django."""

__version__ = "0.1.0"
