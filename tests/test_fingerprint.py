"""fgic.data.fingerprint: a changed data set gets a different fingerprint, a moved one the same."""

import shutil

from PIL import Image

from fgic.data import fingerprint as fp
from fgic.data import synthetic
from tests.test_folder_data import tree


def test_synthetic_fingerprint_follows_knobs_and_generator_version(monkeypatch):
    a = fp.fingerprint("synthetic", {"num_classes": 4, "image_size": 32})
    assert a["hash"] == fp.fingerprint("synthetic", {"image_size": 32, "num_classes": 4, "val_fraction": 0.3})["hash"]
    assert a["hash"] != fp.fingerprint("synthetic", {"num_classes": 4, "image_size": 48})["hash"]
    # the profile's defaults are resolved: giving a default knob explicitly is the same data
    assert fp.fingerprint("synthetic", {})["hash"] == fp.fingerprint("synthetic", {"clutter": 0.6})["hash"]
    monkeypatch.setattr(synthetic, "VERSION", synthetic.VERSION + 1)
    fp.clear()
    assert fp.fingerprint("synthetic", {"num_classes": 4, "image_size": 32})["hash"] != a["hash"]
    fp.clear()


def test_folder_fingerprint_sees_added_and_changed_files_not_a_move(tmp_path):
    root = tree(tmp_path / "a")
    first = fp.fingerprint("folder", {"root": str(root)})
    assert first["n"] == 3 * (5 + 2) and len(first["hash"]) == 12
    moved = tmp_path / "b"
    shutil.copytree(root, moved)
    fp.clear()
    assert fp.fingerprint("folder", {"root": str(moved)})["hash"] == first["hash"]
    Image.new("RGB", (9, 9), (1, 2, 3)).save(moved / "train" / "cat" / "extra.png")
    fp.clear()
    second = fp.fingerprint("folder", {"root": str(moved)})
    assert second["n"] == first["n"] + 1 and second["hash"] != first["hash"]
    img = next((moved / "test" / "dog").iterdir())
    Image.new("RGB", (40, 40), (9, 9, 9)).save(img, format="PNG")  # same name, other size
    fp.clear()
    assert fp.fingerprint("folder", {"root": str(moved)})["hash"] not in (first["hash"], second["hash"])


def test_missing_data_is_named_not_raised(tmp_path):
    fp.clear()
    f = fp.fingerprint("folder", {"root": str(tmp_path / "nothing")})
    assert f["hash"] == "missing" and "cannot read" in f["what"]
