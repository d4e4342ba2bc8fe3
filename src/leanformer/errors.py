"""Errors a user can fix. The CLI prints them as one line (no traceback) and exits with status 2."""


class LeanformerError(Exception):
    """Base class: the message says what is wrong and how to fix it."""


class DataError(LeanformerError, ValueError):
    """A data set or data file cannot be used as given (missing column, empty file, bad labels)."""


class ConfigError(LeanformerError, ValueError):
    """A configuration or recipe value is invalid."""


class UnsupportedModelError(LeanformerError, ValueError):
    """The model's architecture (`config.model_type`) is not in leanformer's tables."""


class AssetMissingError(LeanformerError, FileNotFoundError):
    """A packaged model or data source is not installed; the message names the install command."""
