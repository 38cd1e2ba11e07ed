"""Building blocks, one per file (timm style): each module docstring names its paper and equations."""
