"""Text: token baselines for HuggingFace tokenizers.

Nothing here imports ``transformers``: a tokenizer is any object with the usual
``pad_token_id`` / ``unk_token_id`` / ``mask_token_id`` / ``all_special_ids``.

>>> import torch
>>> from types import SimpleNamespace
>>> tok = SimpleNamespace(pad_token_id=0, unk_token_id=100, mask_token_id=103,
...                       all_special_ids=[0, 100, 101, 102, 103])
>>> token_baselines(torch.tensor([[101, 7592, 2088, 102, 0]]), tok, kind="mask")
tensor([[101, 103, 103, 102,   0]])
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["TOKEN_KINDS", "token_baselines"]

TOKEN_KINDS: tuple[str, ...] = ("pad", "unk", "mask")


def token_baselines(input_ids: torch.Tensor, tokenizer: Any, kind: str = "pad") -> torch.Tensor:
    """Baseline token ids: every ordinary token replaced by the ``kind`` token.

    Special tokens ([CLS], [SEP], padding, …) keep their ids, so the baseline differs
    from the input only where the text is; use the result as ``baselines`` of
    :class:`integrad.LayerIntegratedGradients` at the word-embedding layer, with the
    attention mask passed unchanged in ``additional_forward_args``.
    """
    if kind not in TOKEN_KINDS:
        raise ValueError(
            f"kind={kind!r} is not a token baseline; choose one of {list(TOKEN_KINDS)}"
        )
    if not isinstance(input_ids, torch.Tensor) or input_ids.is_floating_point():
        raise TypeError("input_ids must be an integer tensor of token ids")
    token = getattr(tokenizer, f"{kind}_token_id", None)
    if token is None:
        raise ValueError(f"the tokenizer has no {kind} token (its {kind}_token_id is None)")
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=input_ids.dtype)
    keep = torch.isin(input_ids, special.to(input_ids.device))
    return torch.where(keep, input_ids, torch.full_like(input_ids, int(token)))
