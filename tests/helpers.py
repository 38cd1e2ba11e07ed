"""Helpers shared by the experiment tests."""

from fgic import profiles


def default3(notebook, **more):
    """The default profile at its first three seeds, without ``extra_seeds`` (and with the rows / scales that the
    main job trims, ``more``): the grid the hand-computed values and counts of the experiment tests were written for."""
    return profiles.settings(notebook, "default", overrides={"seeds": [0, 1, 2], "extra_seeds": {}, **more})
