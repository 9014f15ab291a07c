"""Weight-based metrics with tiny random encoders built from configs (no downloads)."""

import numpy as np
import pytest

from syncos.bench.feature_metrics import FeatureScorer, consistency
from syncos.errors import UserError

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")


def tiny_folder(root):
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    torch.manual_seed(0)
    small = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=2)
    clip = transformers.CLIPModel(
        transformers.CLIPConfig(
            text_config=dict(vocab_size=64, max_position_embeddings=16, **small),
            vision_config=dict(image_size=32, patch_size=8, **small),
            projection_dim=16,
        )
    )
    clip.save_pretrained(root / "clip")  # safetensors by default
    vocab = {"<pad>": 0, "<unk>": 1, "a": 2, "red": 3, "ball": 4, "jumps": 5, "rolls": 6}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>"
    ).save_pretrained(root / "clip")
    dino = transformers.ViTModel(
        transformers.ViTConfig(image_size=32, patch_size=8, **small), add_pooling_layer=False
    )
    dino.save_pretrained(root / "dino")
    return root


def test_scores_from_tiny_encoders(tmp_path):
    scorer = FeatureScorer.from_folder(tiny_folder(tmp_path / "w"))
    frames = np.random.default_rng(0).integers(0, 256, (6, 40, 40, 3), dtype=np.uint8)
    m = scorer.evaluate(frames, "a red ball", [(0, 3, "jumps"), (3, 6, "rolls")])
    assert set(m) == {"subject_consistency", "background_consistency", "global_pf", "local_pf"}
    assert all(np.isfinite(v) for v in m.values())
    assert 0 <= m["subject_consistency"] <= 1 and -1 <= m["global_pf"] <= 1
    still = np.repeat(frames[:1], 6, axis=0)
    assert scorer.evaluate(still, "a red ball", [(0, 6, "jumps")])["subject_consistency"] == pytest.approx(
        1, abs=1e-5
    )
    assert scorer.frame_features(frames).shape == (6, 32)


def test_pickled_weights_are_refused(tmp_path):
    root = tiny_folder(tmp_path / "w")
    import torch
    from safetensors.torch import load_file

    (root / "dino" / "model.safetensors").unlink()
    torch.save(load_file(root / "clip" / "model.safetensors"), root / "dino" / "pytorch_model.bin")
    with pytest.raises(UserError, match="safetensors only"):
        FeatureScorer.from_folder(root)


def test_consistency_definition():
    import torch

    f = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    # frame 1: (1 + 1) / 2; frame 2: (0 + 0) / 2
    assert consistency(f) == pytest.approx(0.5)
