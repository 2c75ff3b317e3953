"""Each RecBole 1.2.1 shim, so an upgrade that breaks one fails here first."""

import sys

import numpy as np


def test_numpy_aliases_defined_for_recbole():
    import models.recbole_compat  # noqa: F401

    for name in ("float_", "complex_", "unicode_", "bool8", "float", "int", "long"):
        assert hasattr(np, name), name


def test_config_ignores_our_command_line(monkeypatch):
    from models.recbole_compat import Config, recbole_config

    settings = {"hidden_size": 8, "train_neg_sample_args": None, "data_path": "/nonexistent"}
    monkeypatch.setattr(sys, "argv", ["benchmark", "--hidden_size=999"])
    # the shim is still needed: RecBole's own Config lets the command line win
    assert Config(model="SASRec", dataset="x", config_dict=settings)["hidden_size"] == 999
    config = recbole_config("SASRec", "x", "/nonexistent", settings)
    assert config["hidden_size"] == 8
    assert sys.argv[1] == "--hidden_size=999"


def test_quick_start_is_never_imported():
    import benchmark.data  # noqa: F401
    import models.recbole_baselines  # noqa: F401
    import models.recbole_compat  # noqa: F401

    assert "recbole.quick_start" not in sys.modules


def test_recbole_model_class_trains_with_our_loop_and_state_dict():
    import torch

    from models.recbole_compat import build_model, interaction

    class Stub:
        def num(self, field):
            return 11

    settings = {
        "hidden_size": 8,
        "inner_size": 16,
        "n_layers": 1,
        "n_heads": 1,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "MAX_ITEM_LIST_LENGTH": 5,
    }
    net = build_model("SASRec", settings, Stub())
    batch = interaction(
        torch.tensor([[1, 2, 0, 0, 0]]), torch.tensor([2]), torch.tensor([3]), torch.device("cpu")
    )
    loss = net.calculate_loss(batch)
    loss.backward()
    # our checkpoints are plain state dicts, loadable under torch's weights_only default
    state = {k: v.clone() for k, v in net.state_dict().items()}
    net.load_state_dict(state)
    assert torch.isfinite(loss)


def test_recbole_import_leaves_anomaly_detection_off():
    import torch

    import models.recbole_compat  # noqa: F401
    from models.recbole_compat import get_model

    get_model("SASRec")
    assert not torch.is_anomaly_enabled()
