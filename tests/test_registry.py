"""Each model source goes to its family's loader: demo bundles, STARFlow-V checkpoints, Hub ids."""

from __future__ import annotations

import pytest

from engine.api import EngineError
from engine.demo.bundle import DEMO_MODEL
from engine.registry import family_of, load_pipeline


def test_each_source_goes_to_its_family(tmp_path):
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "run.safetensors").write_bytes(b"")
    (tmp_path / "starflow.pth").write_bytes(b"")
    assert family_of(DEMO_MODEL).name == "shapes-demo"
    assert family_of(tmp_path / "run.json").name == "shapes-demo"
    assert family_of(tmp_path / "run.safetensors").name == "shapes-demo"  # a bundle's weights
    assert family_of(tmp_path / "starflow.pth").name == "starflow-v"
    assert family_of(tmp_path / "other.safetensors").name == "starflow-v"
    assert family_of("apple/starflow").name == "starflow-v"
    assert family_of("apple/starflow@main").name == "starflow-v"
    assert family_of("apple/starflow@v1.0").name == "starflow-v"  # a dotted revision


def test_the_default_is_the_demo_model_and_bad_sources_say_so(tmp_path):
    assert load_pipeline(None, "cpu").info.name == load_pipeline(DEMO_MODEL, "cpu").info.name
    with pytest.raises(EngineError, match="model description not found"):
        load_pipeline(tmp_path / "missing.json", "cpu")
    with pytest.raises(EngineError, match="model not found"):
        load_pipeline(tmp_path / "missing.pth", "cpu")
