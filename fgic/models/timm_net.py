"""Any timm classification network behind the fgic model protocol.

``TimmNet("convnext_atto", num_classes)`` keeps timm's ``forward_features`` (B, C, h, w) and its head
up to the pre-logits (pool, norm, flatten), and owns the dropout and linear classifier so every model
exposes the same ``classify`` step. ``pretrained=True`` asks timm for its default weights (the Hugging
Face cache, or a download when online and ``FGIC_ALLOW_DOWNLOAD`` is not "0"); a string is a local weights
file. ``pretrained_tag`` picks another of timm's weight sets for the same architecture (``arch.tag``, e.g.
``TimmNet("convnext_small", 200, True, pretrained_tag="fb_in22k")``); an unknown tag, or weights that are
neither cached nor downloadable, raise ``PretrainedWeightsError`` naming what to do.
"""

from __future__ import annotations

import timm
import torch
import torch.nn as nn

from fgic.models.pretrained import (
    PretrainedWeightsError,
    _found,
    downloads_allowed,
    load_into,
    load_state_dict_file,
    weights_dir,
)
from fgic.models.registry import register_model

_HUB_FILES = ("model.safetensors", "pytorch_model.bin")


def timm_weights(arch: str, allow_download: bool | None = None) -> str | None:
    """The local weights file of timm's ``arch`` (``name[.tag]``), or None when downloading is allowed.

    Looks in ``weights_dir()`` (``<arch>.<tag>.safetensors`` / ``.pth`` / ``.bin``) and the Hugging Face cache.
    Raises ``PretrainedWeightsError`` for an unknown tag or for weights that are not there while downloads
    are disabled (``allow_download`` defaults to ``fgic.models.pretrained.downloads_allowed()``), without any
    network access.
    """
    try:
        cfg = timm.models.get_pretrained_cfg(arch, allow_unregistered=False)
    except RuntimeError as e:
        base = arch.split(".")[0]
        tags = [n.split(".", 1)[1] for n in timm.list_pretrained(f"{base}.*")]
        raise PretrainedWeightsError(f"timm has no weights {arch!r} ({e}); tags of {base}: {tags}") from e
    if cfg is None:
        raise PretrainedWeightsError(f"timm has no pretrained weights for {arch!r}")
    hub_id = getattr(cfg, "hf_hub_id", None)
    full = f"{cfg.architecture}.{cfg.tag}" if getattr(cfg, "tag", None) else arch
    own = weights_dir() / f"{full}.safetensors"
    for path in (own, own.with_suffix(".pth"), own.with_suffix(".bin")):
        if path.is_file():
            _found(path)
            return str(path)
    if hub_id:
        from huggingface_hub import try_to_load_from_cache

        for name in _HUB_FILES:
            path = try_to_load_from_cache(hub_id, name)  # a local look-up only
            if isinstance(path, str):
                _found(path)
                return path
    if allow_download is None:
        allow_download = downloads_allowed()
    if not allow_download:
        source = f"https://huggingface.co/{hub_id}/resolve/main/{_HUB_FILES[0]}" if hub_id else "timm's URL"
        raise PretrainedWeightsError(
            f"timm weights {full!r} (repository {hub_id or '-'}, tag {getattr(cfg, 'tag', None) or '-'}, file "
            f"{_HUB_FILES[0]}) are not in the local cache and downloads are disabled (FGIC_ALLOW_DOWNLOAD=0). "
            f"Download {source} elsewhere and put it at {own} (or into the Hugging Face cache, HF_HOME), "
            "or pass pretrained='path/to/file.safetensors|pth'."
        )
    _found(f"download {hub_id or arch}")
    return None


class TimmNet(nn.Module):
    def __init__(
        self,
        arch: str,
        num_classes: int,
        pretrained: bool | str = False,
        drop_rate: float = 0.0,
        pretrained_tag: str | None = None,
        **kw,
    ):
        super().__init__()
        arch = f"{arch.split('.')[0]}.{pretrained_tag}" if pretrained_tag else arch  # e.g. "convnext_small.fb_in22k"
        if pretrained is True:
            local = timm_weights(arch)  # raises for an unknown tag or missing weights that may not be fetched
            overlay = {"pretrained_cfg_overlay": {"file": local}} if local else {}
            try:
                body = timm.create_model(arch, pretrained=True, num_classes=0, **overlay, **kw)
            except Exception as e:
                raise PretrainedWeightsError(
                    f"timm could not load pretrained weights for {arch!r} ({type(e).__name__}: {e}). "
                    "Put them in the Hugging Face cache (HF_HOME) on a machine with internet access, or pass "
                    "pretrained='path/to/file.safetensors|pth'; fgic never falls back to random weights."
                ) from e
        else:
            body = timm.create_model(arch, pretrained=False, num_classes=0, **kw)
            if isinstance(pretrained, str):
                load_into(body, load_state_dict_file(pretrained), skip_prefixes=("head.fc.", "fc.", "classifier."))
        self.arch = arch
        self.body = body
        self.num_classes = num_classes
        self.num_features = body.num_features  # D, after timm's pre-logits
        self.feature_channels = getattr(body, "feature_info", [{"num_chs": body.num_features}])[-1]["num_chs"]
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body.forward_features(x)  # (B, C, h, w)

    def forward_head(self, fmap: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        z = self.body.forward_head(fmap, pre_logits=True)  # (B, D)
        return z if pre_logits else self.classify(z)

    def classify(self, emb: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(emb))  # (B, K)

    def get_classifier(self) -> nn.Linear:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))  # (B, K)


for _arch in ("convnext_atto", "convnext_tiny", "convnext_small"):

    def _factory(num_classes: int, pretrained: bool | str = False, _arch=_arch, **kw) -> TimmNet:
        return TimmNet(_arch, num_classes, pretrained, **kw)

    register_model(_arch, paper="baseline", description=f"timm {_arch} (ConvNeXt), timm's pre-logits + linear head")(
        _factory)
