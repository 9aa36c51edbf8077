import pytest
import torch

from retro.checkpoint import CheckpointError, read_checkpoint, weights_path, write_checkpoint


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
    weights = weights_path(tmp_path / "c")
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(CheckpointError, match=f"{weights.name} is corrupt"):
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


def test_a_kill_between_the_two_writes_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    """Weights go under a fresh name first and config.json, replaced last, says which: stopping after the weights
    (here: the config write fails) leaves the previous pair readable, and the next write cleans up."""
    write_checkpoint(tmp_path / "c", {"a": torch.ones(2)}, {"v": 1})
    from retro import checkpoint

    real = checkpoint.atomic_write

    def die_on_config(path, write):
        if path.name == "config.json":
            raise KeyboardInterrupt  # as if killed between the two renames
        real(path, write)

    monkeypatch.setattr(checkpoint, "atomic_write", die_on_config)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(tmp_path / "c", {"a": torch.zeros(2)}, {"v": 2})
    monkeypatch.setattr(checkpoint, "atomic_write", real)
    tensors, config = read_checkpoint(tmp_path / "c")
    assert config == {"v": 1} and torch.equal(tensors["a"], torch.ones(2))
    write_checkpoint(tmp_path / "c", {"a": torch.full((2,), 3.0)}, {"v": 3})
    assert len(list((tmp_path / "c").glob("weights*.safetensors"))) == 1
    assert read_checkpoint(tmp_path / "c")[1] == {"v": 3}
