"""Stage II's augmentations: the registry (:mod:`.registry`, torch-free) and the functions
(:mod:`.ops`, torch)."""

from vposer_data.augment.registry import (
    AUGMENTATIONS,
    DEFAULT_AUGMENTATIONS,
    MATROT_FIELD,
    Augmentation,
    AugmentSpec,
    is_random,
    output_fields,
    parse_augmentations,
)

__all__ = [
    "AUGMENTATIONS",
    "DEFAULT_AUGMENTATIONS",
    "MATROT_FIELD",
    "AugmentSpec",
    "Augmentation",
    "is_random",
    "output_fields",
    "parse_augmentations",
]
