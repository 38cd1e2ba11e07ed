"""fgic.registry: one Registry class behind models, losses, data sets and transform presets; the model names;
every registered model and loss built and run (forward, protocol shapes, gradients); ``python -m fgic list``."""

from __future__ import annotations

import importlib
import math
import sys
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from fgic.__main__ import main
from fgic.data import build_dataset, list_datasets
from fgic.data.transforms import PRESETS, build_transform, list_presets
from fgic.losses import create_loss, list_losses
from fgic.models import create_model, list_models
from fgic.models.base import ModelOutput
from fgic.models.registry import MODELS
from fgic.registry import Registry

# ---------------------------------------------------------------- the Registry class


def _toy() -> Registry:
    reg = Registry("widget")

    @reg.register("round_widget", paper="001", aliases=("ball",), deprecated=("old_round",))
    def round_widget(size=1):
        """A round widget.

        More text that is not the description."""
        return ("round", size)

    reg.add("square_widget", lambda: "square", description="A square one")
    return reg


def test_registry_resolves_aliases_and_warns_for_deprecated_names():
    reg = _toy()
    assert reg.get("round_widget")(2) == reg["ball"](2) == ("round", 2)
    with pytest.warns(DeprecationWarning, match="'old_round' is deprecated; use 'round_widget'"):
        assert reg.get("old_round")(3) == ("round", 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a plain alias does not warn
        reg.get("ball")
    assert "ball" in reg and "old_round" in reg and "nothing" not in reg
    assert reg.list() == ["round_widget", "square_widget"] == list(reg) and len(reg) == 2  # no aliases
    assert reg.list("square") == ["square_widget"] and reg.list("*_widget") == reg.list()
    assert reg.describe("round_widget") == "A round widget." and reg.describe("square_widget") == "A square one"
    e = reg.entry("old_round")
    assert (e.name, e.paper, e.aliases, e.deprecated) == ("round_widget", "001", ("ball",), ("old_round",))


def test_registry_errors_name_the_closest_names():
    reg = _toy()
    with pytest.raises(KeyError, match=r"unknown widget 'round_widgte'; did you mean 'round_widget'"):
        reg.get("round_widgte")
    with pytest.raises(KeyError, match=r"did you mean 'round_widget'"):  # an alias suggests its new name
        reg.get("old_rond")
    with pytest.raises(KeyError, match="unknown widget 'zzz'; available"):
        reg.get("zzz")
    for dup in ("round_widget", "ball", "old_round"):
        with pytest.raises(ValueError, match="already registered"):
            reg.add(dup, lambda: None)
    reg.deprecate("sq", "square_widget")
    with pytest.warns(DeprecationWarning, match="use 'square_widget'"):
        assert reg["sq"]() == "square"
    assert "sq (deprecated)" in reg.table() and "ball" in reg.table("round")


def test_registry_loads_lazily_once():
    calls = []
    reg = Registry("thing", loader=lambda: calls.append(1) or reg.add("a", lambda: 1, description="x"))
    assert calls == []
    assert reg.list() == ["a"] and reg.list() == ["a"] and calls == [1]


def test_every_registry_has_a_description_for_every_name():
    from fgic.data.registry import DATASETS
    from fgic.losses.registry import LOSSES

    for reg in (MODELS, LOSSES, DATASETS, PRESETS):
        missing = [e.name for e in reg.entries() if not e.description]
        assert not missing, f"{reg.kind}: no description (docstring) for {missing}"


def test_public_functions_keep_their_errors():
    with pytest.raises(KeyError, match="unknown model 'resnet81'.*did you mean.*'resnet18'"):
        create_model("resnet81", 3)
    with pytest.raises(ValueError, match="num_classes"):
        create_model("resnet18", 0)
    with pytest.raises(KeyError, match="unknown loss 'centre'.*did you mean.*'center'"):
        create_loss("centre", 3)
    with pytest.raises(KeyError, match="unknown data set 'cub2011'.*did you mean.*'cub'"):
        build_dataset("cub2011")
    with pytest.raises(KeyError, match="unknown transform preset 'acanett'.*did you mean.*'acanet'"):
        build_transform("acanett", train=False)
    assert type(create_loss("lmcl", 5, 8)) is type(create_loss("cosface", 5, 8))  # an alias, listed once
    assert "lmcl" not in list_losses() and "cosface" in list_losses()
    assert {"cub", "synthetic", "folder"} <= set(list_datasets()) and list_datasets("cub") == ["cub", "cub_aircraft"]
    assert set(list_presets()) == {"plain", "acanet", "multi_attention", "mixed_attention", "gholm", "scra"}


# ---------------------------------------------------------------- model names

RENAMED = {  # former name -> registered name (``<backbone>_<module>[_<where>]``)
    "plain_resnet50": "resnet50",
    "fcn_resnet50": "resnet50_fcn_head",
    "cam_resnet50": "resnet50_cam_head",
    "ca_resnet50": "resnet50_ca_units",
    "sa_resnet50": "resnet50_sa_units",
    "csca_resnet50": "resnet50_csca_units",
    "resnet50_base": "resnet50_top",
    "resnet50_ca": "resnet50_ca_top",
    "resnet50_sa": "resnet50_sa_top",
    "resnet50_ma": "resnet50_ma_top",
    "vgg16bn_base": "vgg16_bn_top",
    "vgg16bn_ca": "vgg16_bn_ca_top",
    "vgg16bn_sa": "vgg16_bn_sa_top",
    "vgg16bn_ma": "vgg16_bn_ma_top",
}


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_former_model_names_still_build_with_a_deprecation_warning(old):
    new = RENAMED[old]
    assert new in list_models() and old not in list_models()
    with pytest.warns(DeprecationWarning, match=f"'{old}' is deprecated; use '{new}'"):
        assert MODELS.resolve(old) == new
    kw = {"width": 8} if new.startswith("vgg") else {"layers": (1, 1, 1, 1), "width": 8}
    torch.manual_seed(0)
    with pytest.warns(DeprecationWarning):
        a = create_model(old, 3, **kw)
    torch.manual_seed(0)
    b = create_model(new, 3, **kw)
    assert type(a) is type(b) and a.state_dict().keys() == b.state_dict().keys()
    assert all(torch.equal(a.state_dict()[k], v) for k, v in b.state_dict().items())


def test_resnet50_is_torchvisions_resnet50():
    """One plain ResNet-50: same parameters, names and outputs as torchvision's for the same weights."""
    ours, tv = create_model("resnet50", 10).eval(), torchvision.models.resnet50(num_classes=10).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in tv.parameters())
    tv.load_state_dict({k.removeprefix("features."): v for k, v in ours.state_dict().items()})
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x))
    # the paper-002 baseline is not torchvision's network: its head is FC(512)-BN-ELU-FC, hence "_top"
    top = create_model("resnet50_top", 10)
    assert sum(p.numel() for p in top.parameters()) > sum(p.numel() for p in ours.parameters())


def test_readme_model_names_table_lists_every_model():
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = text.split("### Model names", 1)[1].split("\n## ", 1)[0]
    missing = [n for n in list_models() if f"`{n.removesuffix('_scra')}`" not in table]
    assert not missing, f"README 'Model names' lacks {missing}"


def test_dry_run_shrinks_former_names_like_new_ones():
    from fgic.dryrun import _shrink_kw

    assert _shrink_kw("plain_resnet50") == _shrink_kw("resnet50_ca_units") == {"layers": [1, 1, 1, 1], "width": 8}
    assert _shrink_kw("vgg16bn_ma") == _shrink_kw("vgg16_bn_top") == {"width": 8}


# ---------------------------------------------------------------- every registered model, tiny

RN = {"layers": (1, 1, 1, 1), "width": 8}
CNX = {"dims": (8, 16, 32, 64), "depths": (1, 1, 1, 1)}
TINY = {  # name prefix -> kwargs of a small version (first match wins); models without a size knob: full size
    "acanet18": {"width": 8, "kernel_att": 3},
    "study_resnet18": {"width": 8},
    "study_resnet50": RN,
    "resnet18": {"width": 8},
    "resnet50_": {**RN, "hidden": 16},  # hidden: the paper-002 head's width (dropped for the others, below)
    "resnet50": RN,
    "vgg16_bn_": {"width": 8, "hidden": 16},
    "gholm_resnet18": {"width": 8},
    "gholm_resnet50": RN,
    "gholm_convnext": CNX,
    "convnextv2_": CNX,
    "convnext_atto": CNX,
    "convnext_tiny": CNX,
    "convnext_small": CNX,
}
FULL_SIZE_OK = {"vgg16", "vgg16_bn", "googlenet", "mobilenetv3_large", "densenet121", "convnext_tiny_tv"}


def tiny_kwargs(name: str) -> dict:
    if name in FULL_SIZE_OK:
        return {}
    kw = next((kw for prefix, kw in TINY.items() if name.startswith(prefix)), None)
    if kw is None:
        pytest.fail(f"{name}: add its small kwargs to TINY (or the name to FULL_SIZE_OK if it is cheap)")
    kw = dict(kw)
    if "hidden" in kw and not name.endswith("_top"):
        kw.pop("hidden")  # only the paper-002 networks have the FC(hidden) head
    return kw


def check_model(model, k: int, size: int = 32, batch: int = 2) -> None:
    x = torch.randn(batch, 3, size, size)
    model.train()
    fmap = model.forward_features(x)
    assert fmap.ndim == 4 and fmap.shape[:2] == (batch, model.feature_channels), fmap.shape
    emb = model.forward_head(fmap, pre_logits=True)
    assert emb.shape == (batch, model.num_features)
    logits = model.forward_head(fmap)
    assert logits.shape == (batch, k) and torch.isfinite(logits).all()
    F.cross_entropy(logits, torch.arange(batch) % k).backward()
    clf = [p for p in model.get_classifier().parameters() if p.requires_grad]
    assert clf and all(p.grad is not None and torch.isfinite(p.grad).all() for p in clf)
    assert any(p.grad.abs().sum() > 0 for p in clf), "no gradient reaches the classifier"
    model.eval()
    with torch.no_grad():
        out = model(x)
        assert out.shape == (batch, k) and torch.isfinite(out).all()
        torch.testing.assert_close(out, model.forward_head(model.forward_features(x)))


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_at_a_tiny_size(name):
    torch.manual_seed(0)
    model = create_model(name, 5, pretrained=False, **tiny_kwargs(name))
    check_model(model, 5)


def test_convnextv2_large_scra_full_size_runs():
    """The paper's network itself once (196 M parameters: ~4 s and ~2 GB on a CPU), not only a narrow copy."""
    torch.manual_seed(0)
    check_model(create_model("convnextv2_large_scra", 3, pretrained=False), 3)


# ---------------------------------------------------------------- every registered loss

K, D, B = 5, 8, 6
MC_CHANNELS = 3 * K  # mc: xi = 3 feature channels per class
KNOWN = {  # loss -> (value on zero logits / zero embeddings / identical embeddings, what makes it known)
    "ce": math.log(K),  # uniform softmax
    "focal": (1 - 1 / K) ** 2 * math.log(K),  # gamma 2: (1 - p)^2 (-log p) at p = 1 / K
    "center": math.log(K),  # embeddings on their (zero-initialised) centres: the CE term only
}


def _out(target: torch.Tensor, seed: int = 0) -> ModelOutput:
    g = torch.Generator().manual_seed(seed)
    fmap = torch.randn(B, MC_CHANNELS, 3, 4, generator=g, dtype=torch.float64).requires_grad_()
    emb = torch.randn(B, D, generator=g, dtype=torch.float64).requires_grad_()
    logits = torch.randn(B, K, generator=g, dtype=torch.float64).requires_grad_()
    return ModelOutput(fmap, emb, logits)


def _loss(name: str):
    torch.manual_seed(0)
    return create_loss(name, K, MC_CHANNELS if name == "mc" else D).double()


@pytest.mark.parametrize("name", list_losses())
def test_every_registered_loss_is_finite_with_finite_gradients(name):
    target = torch.tensor([0, 0, 1, 1, 2, 4])  # every anchor has a positive (SupCon)
    out, loss = _out(target), _loss(name)
    value = loss(out, target)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    grads = {f: getattr(out, f).grad for f in loss.needs}
    assert all(g is None or torch.isfinite(g).all() for g in grads.values()), name
    assert any(g is not None and g.abs().sum() > 0 for g in grads.values()), f"{name}: no gradient to {loss.needs}"
    for n, p in loss.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and torch.isfinite(p.grad).all(), n
    assert loss.logits(out).shape == (B, K)


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_losses_with_a_known_value(name):
    target = torch.tensor([0, 0, 1, 1, 2, 4])
    z = ModelOutput(torch.zeros(B, MC_CHANNELS, 3, 4, dtype=torch.float64), torch.zeros(B, D, dtype=torch.float64),
                    torch.zeros(B, K, dtype=torch.float64))
    assert float(_loss(name)(z, target).detach()) == pytest.approx(KNOWN[name], rel=1e-9)


def test_supcon_of_identical_embeddings_is_log_of_the_other_samples():
    target = torch.tensor([0, 0, 1, 1, 2, 2])
    same = ModelOutput(torch.zeros(B, 1, 1, 1), torch.ones(B, D, dtype=torch.float64),
                       torch.zeros(B, K, dtype=torch.float64))
    assert float(_loss("supcon")(same, target).detach()) == pytest.approx(math.log(B - 1), rel=1e-6)


# ---------------------------------------------------------------- CLI and the fgic.profile shim


def test_cli_lists_each_registry_as_a_table(capsys):
    assert main(["list", "models"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("resnet50_ca_units "))
    assert " 001 " in row and "every bottleneck unit" in row and "ca_resnet50 (deprecated)" in row
    assert len(out.splitlines()) == 1 + len(list_models())
    assert main(["list", "losses", "cos"]) == 0
    out = capsys.readouterr().out
    assert "cosface" in out and "[lmcl]" in out and "focal" not in out
    assert main(["list", "datasets"]) == 0 and "CUB-200-2011" in capsys.readouterr().out
    assert main(["list", "transforms", "gholm"]) == 0 and "crop 448" in capsys.readouterr().out
    assert main(["list", "models", "*_top"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1 + 8
    assert main(["list", "models", "no_such_model"]) == 1
    with pytest.raises(SystemExit):
        main(["list", "widgets"])


def test_fgic_profile_is_a_deprecated_shim_of_fgic_cost():
    import fgic.cost

    sys.modules.pop("fgic.profile", None)
    with pytest.warns(DeprecationWarning, match="fgic.profile is deprecated; use fgic.cost"):
        shim = importlib.import_module("fgic.profile")
    assert shim.complexity is fgic.cost.complexity and shim.inference_time is fgic.cost.inference_time
    assert shim.params is fgic.cost.params and set(shim.__all__) == set(fgic.cost.__all__)
