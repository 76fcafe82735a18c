"""The training forward pass of a decoder whose lower layers are frozen, at a fraction of the cost.

It gives the loss of ``model(input_ids, attention_mask, labels).loss`` (to rounding) with two
savings:

- The frozen layers below the first adapted one never change during training, so the hidden
  states that enter the first adapted layer are computed once per example and reused every
  epoch (within a memory budget; beyond it they are recomputed, still without autograd).
- The LM head (vocabulary x hidden: on SmolLM2 as costly as eight decoder layers per token)
  runs only at the positions that predict a reply token, not at every prompt position, and
  so does its backward pass.

It applies to decoders that feed ``inputs_embeds`` into their first layer unchanged and keep
their layers in ``decoder.layers`` (the Llama family); other models take the plain path.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from training.chat_format import IGNORE_INDEX

# Model types whose decoder adds nothing to inputs_embeds (no scaling, no learned positions).
SUPPORTED_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


class _Reached(Exception):
    """Raised by the hook on the first adapted layer: the lower pass is done."""

    def __init__(self, hidden: torch.Tensor) -> None:
        self.hidden = hidden


def _causal_lm(model: Any) -> Any:
    """The transformers model under a peft wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def first_trainable_layer(layers: Sequence[nn.Module]) -> int | None:
    for index, layer in enumerate(layers):
        if any(p.requires_grad for p in layer.parameters()):
            return index
    return None


class ActivationCache:
    """Hidden states entering the first adapted layer, by example key, within a byte budget.

    One cache can outlive a training run: a cycle's search trials and its candidate train the
    same examples through the same frozen layers, so the lower pass is paid once per example
    for the whole cycle, not once per run. ``bind`` empties it when what produced the states
    (the split point, the base model, the sequence lengths) changes, so stale states are never
    reused."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.entries: dict[Hashable, torch.Tensor] = {}
        self.bytes = 0
        self.signature: Hashable = None

    def bind(self, signature: Hashable) -> None:
        if signature != self.signature:
            self.entries.clear()
            self.bytes = 0
            self.signature = signature

    def put(self, key: Hashable, states: torch.Tensor) -> bool:
        """Keep ``states`` under ``key`` if the budget allows; False once it is full."""
        size = states.numel() * states.element_size()
        if self.bytes + size > self.max_bytes:
            return False
        self.entries[key] = states
        self.bytes += size
        return True


class SplitForward:
    """Frozen lower layers once per example, adapted upper layers and a reply-only LM head
    every step."""

    def __init__(
        self,
        model: Any,
        *,
        cache_bytes: int = 0,
        cache: ActivationCache | None = None,
        context: Hashable = None,
    ) -> None:
        """``cache`` (shared between runs) or a private one of ``cache_bytes``; ``context``
        names what else decides the cached states (base model, sequence lengths)."""
        causal_lm = _causal_lm(model)
        self.decoder = causal_lm.get_decoder()
        self.lm_head = causal_lm.get_output_embeddings()
        layers = list(self.decoder.layers)
        self.split = first_trainable_layer(layers) or 0
        self.upper = nn.ModuleList(layers[self.split :])
        self.entry = layers[self.split] if self.split else None
        self.store = cache if cache is not None else ActivationCache(cache_bytes)
        self.store.bind((self.split, context))

    @property
    def cache(self) -> dict[Hashable, torch.Tensor]:
        return self.store.entries

    @property
    def cached_bytes(self) -> int:
        return self.store.bytes

    @property
    def cache_bytes(self) -> int:
        """The budget in use: none when the first layer is adapted (nothing to reuse)."""
        return self.store.max_bytes if self.split else 0

    @staticmethod
    def applies_to(model: Any) -> bool:
        causal_lm = _causal_lm(model)
        decoder = causal_lm.get_decoder() if hasattr(causal_lm, "get_decoder") else None
        return (
            getattr(causal_lm.config, "model_type", None) in SUPPORTED_MODEL_TYPES
            and isinstance(getattr(decoder, "layers", None), nn.ModuleList)
            and first_trainable_layer(list(decoder.layers)) is not None
        )

    def loss(
        self,
        keys: Sequence[Hashable],
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention: torch.Tensor,
    ) -> torch.Tensor:
        """Mean cross-entropy over the reply tokens of a right-padded batch; ``keys`` name
        the examples (the same key must always mean the same tokens)."""
        logits, targets, _ = self._reply_logits(keys, input_ids, labels, attention)
        return nn.functional.cross_entropy(logits.float(), targets)

    def reply_log_probs(
        self,
        keys: Sequence[Hashable],
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention: torch.Tensor,
    ) -> list[torch.Tensor]:
        """Per row, the log-probabilities over the vocabulary at each position that predicts
        one of its reply tokens, in order: [reply tokens, vocabulary]."""
        logits, _, predicting = self._reply_logits(keys, input_ids, labels, attention)
        logprobs = torch.log_softmax(logits.float(), dim=-1)
        return list(logprobs.split(predicting.sum(dim=1).tolist()))

    def _reply_logits(
        self,
        keys: Sequence[Hashable],
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        attention: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits at the positions that predict a reply token, row by row, their target
        tokens, the [batch, width - 1] mask of those positions)."""
        hidden = self._entry_states(keys, input_ids, attention)
        with self._only_upper_layers():
            out = self.decoder(inputs_embeds=hidden, attention_mask=attention, use_cache=False)
        targets = labels[:, 1:]  # position t predicts token t + 1
        predicting = targets != IGNORE_INDEX
        logits = self.lm_head(out.last_hidden_state[:, :-1][predicting])
        return logits, targets[predicting], predicting

    def _entry_states(
        self, keys: Sequence[Hashable], input_ids: torch.Tensor, attention: torch.Tensor
    ) -> torch.Tensor:
        """Hidden states entering the first adapted layer, [batch, width, hidden]."""
        missing = [row for row, key in enumerate(keys) if key not in self.cache]
        fresh = self._lower_pass(input_ids[missing], attention[missing]) if missing else None
        if fresh is not None:
            self._remember(keys, missing, fresh, attention)
            if len(missing) == len(keys):
                return fresh
        width = input_ids.shape[1]
        hidden = torch.zeros(
            (len(keys), width, self._hidden_size()), dtype=self._dtype(), device=input_ids.device
        )
        for row, key in enumerate(keys):
            if key in self.cache:
                states = self.cache[key]
                hidden[row, : len(states)] = states
        if fresh is not None:
            hidden[missing] = fresh
        return hidden

    @torch.no_grad()
    def _lower_pass(self, input_ids: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
        if self.entry is None:  # the first layer is adapted: its input is the embeddings
            return self.decoder.get_input_embeddings()(input_ids)

        def stop(_module: nn.Module, args: tuple, kwargs: dict) -> None:
            raise _Reached(args[0] if args else kwargs["hidden_states"])

        handle = self.entry.register_forward_pre_hook(stop, with_kwargs=True)
        try:
            self.decoder(input_ids=input_ids, attention_mask=attention, use_cache=False)
        except _Reached as reached:
            return reached.hidden
        finally:
            handle.remove()
        raise RuntimeError("the decoder never reached its first adapted layer")

    def _remember(
        self,
        keys: Sequence[Hashable],
        rows: list[int],
        fresh: torch.Tensor,
        attention: torch.Tensor,
    ) -> None:
        if not self.cache_bytes:
            return
        for index, row in enumerate(rows):
            length = int(attention[row].sum())  # right padding: real tokens come first
            if not self.store.put(keys[row], fresh[index, :length].detach().clone()):
                return

    @contextmanager
    def _only_upper_layers(self) -> Iterator[None]:
        layers = self.decoder.layers
        self.decoder.layers = self.upper
        try:
            yield
        finally:
            self.decoder.layers = layers

    def _hidden_size(self) -> int:
        return int(self.decoder.get_input_embeddings().embedding_dim)

    def _dtype(self) -> torch.dtype:
        return self.decoder.get_input_embeddings().weight.dtype
