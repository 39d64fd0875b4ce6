"""Frozen, validated configurations (TOML in, dataclasses inside) and their stable keys.

Submodules: :mod:`.base` (checks, TOML, keys), :mod:`.tile` (circuit side: tile, device,
periphery), :mod:`.rpu` (model side: behavioral array model), :mod:`.training`.
"""

from rpucircuit.config.base import (
    SCHEMA_VERSION,
    config_key,
    from_dict,
    from_toml,
    to_dict,
    to_toml,
)

__all__ = ["SCHEMA_VERSION", "config_key", "from_dict", "from_toml", "to_dict", "to_toml"]
