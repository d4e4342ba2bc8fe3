"""Compression methods: each folder registers its config class with `leanformer.register_method`."""

from . import kronecker  # noqa: F401
from . import pruning  # noqa: F401
from . import quantization  # noqa: F401
