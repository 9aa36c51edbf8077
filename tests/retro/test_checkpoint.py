import pytest
import torch

from retro.checkpoint import CheckpointError, read_checkpoint, write_checkpoint


def test_round_trip(tmp_path):
    tensors = {"a": torch.randn(3, 2), "b": torch.arange(4)}
    write_checkpoint(tmp_path / "c", tensors, {"x": 1})
    loaded, config = read_checkpoint(tmp_path / "c")
    assert (
        config == {"x": 1}
        and torch.equal(loaded["a"], tensors["a"])
        and torch.equal(loaded["b"], tensors["b"])
    )


def test_missing_truncated_and_corrupt(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        read_checkpoint(tmp_path / "absent")
    write_checkpoint(tmp_path / "c", {"a": torch.zeros(100)}, {"x": 1})
    weights = tmp_path / "c" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="weights.safetensors is corrupt"):
        read_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        read_checkpoint(tmp_path / "c")
    (tmp_path / "c" / "config.json").unlink()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        read_checkpoint(tmp_path / "c")


def test_failed_write_keeps_previous_checkpoint(tmp_path):
    write_checkpoint(tmp_path / "c", {"a": torch.ones(2)}, {"v": 1})
    with pytest.raises(TypeError):
        write_checkpoint(tmp_path / "c", {"a": torch.zeros(2)}, {"v": object()})  # not JSON-able
    tensors, config = read_checkpoint(tmp_path / "c")
    assert config == {"v": 1} and torch.equal(tensors["a"], torch.ones(2))
    assert not [p for p in (tmp_path / "c").iterdir() if p.name.endswith(".tmp")]
