from __future__ import annotations

import torch
from shipyard.core.registry import component_schema, import_target
from tabular_models import ResidualMLP
from tabular_models.schemas import ResidualMLPConf


def test_registered_with_shipyard_by_entry_point() -> None:
    assert component_schema("tabular_models.ResidualMLP") is ResidualMLPConf
    assert import_target("tabular_models.ResidualMLP") is ResidualMLP


def test_shapes_and_residual_blocks() -> None:
    net = ResidualMLP(n_features=5, n_outputs=3, width=8, blocks=3, dropout=0.0)
    assert net(torch.zeros(4, 5)).shape == (4, 3)
    assert len(net.blocks) == 3
