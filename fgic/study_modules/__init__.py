"""The cross-paper study's modules, one file each: ``create_model("study_resnet18", K, module="<name>")``.

Each file registers one function ``fn(net, **kw) -> None`` in ``fgic.models.study.STUDY_MODULES`` that edits a
freshly built ``StudyResNet`` in place, putting its paper's module where that paper puts it. The registry
imports every module of this package on its first look-up, so adding a module is one new file here::

    from fgic.models.study import STUDY_MODULES, set_unit_attention
    from fgic.nn.registry import create_attention

    @STUDY_MODULES.register("eca_units", paper="ECA-Net", where="every residual unit, before the addition")
    def eca_units(net):
        '''ECA channel attention in every residual unit.'''
        set_unit_attention(net, lambda c: create_attention("eca", c))

Registered here: ``none``; paper 000 (ACANet): ``accb``, ``fcsa``, ``patchify``; paper 001 (multi-attention):
``ca``, ``sa``, ``csca``, ``cam_head``; paper 002 (mixed attention): ``se``, ``softmax_sa``, ``ma``; paper 004
(ConvNeXt + SCR-attention): ``scra``. ``fgic.models.study.describe_study_modules()`` gives where each one goes.

Not a module here: paper 003's GHOLM (global-to-local heatmap-guided crop and erase branches) changes the
training step (extra forward passes on cropped / erased views and their losses), not the network, so it
cannot be one edit of the backbone; it stays a training wrapper (``fgic.models.gholm``). Files whose name
starts with ``_`` are not imported.
"""
