"""PyTorch's own training loop for a language model, written as its users write it (d2l's concise
RNNModel and train_epoch), without seqcore: the benchmark's ceiling for the PyTorch backend.

Same work per step as seqcore's protocol: one-hot or embedding input, one fused nn.RNN/GRU/LSTM
layer, nn.Linear head, mean cross-entropy, global-norm clipping, SGD, the loss read every step
(as d2l does to report perplexity), the state carried and detached between batches.
"""
from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_LAYERS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


class _LanguageModel(nn.Module):
    """Token ids (T, N) -> logits (T, N, V) and the new state."""

    def __init__(self, cell: str, vocab_size: int, hidden_size: int, embed_size: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_size) if embed_size else None
        self.rnn = _LAYERS[cell](embed_size or vocab_size, hidden_size)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor, state):
        x = self.embedding(ids) if self.embedding is not None else F.one_hot(ids, self.vocab_size).float()
        outputs, state = self.rnn(x, state)
        return self.head(outputs), state


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Loop:
    """A model, its optimizer and its carried state: `run(batches)` trains over them and returns
    the seconds taken (the device synchronised at the end)."""

    def __init__(self, cell: str, vocab_size: int, hidden_size: int, device: str,
                 embed_size: int = 0, lr: float = 1.0, clip: float = 1.0):
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        torch.manual_seed(0)
        self.model = _LanguageModel(cell, vocab_size, hidden_size, embed_size).to(self.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)
        self.clip = clip
        self.state = None

    def begin_state(self, batch_size: int):
        """Zeros of (1, N, H): h, or (h, c) for the LSTM."""
        zeros = torch.zeros(1, batch_size, self.model.rnn.hidden_size, device=self.device)
        return (zeros, zeros.clone()) if isinstance(self.model.rnn, nn.LSTM) else zeros

    def run(self, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
        _sync(self.device)
        started = time.perf_counter()
        for inputs, targets in batches:  # time-major (T, N) ids, as a DataLoader would hand them over
            X = torch.as_tensor(inputs, dtype=torch.int64).to(self.device)
            Y = torch.as_tensor(targets, dtype=torch.int64).to(self.device)
            state = self.begin_state(X.shape[1]) if self.state is None else _detach(self.state)
            logits, self.state = self.model(X, state)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), Y.reshape(-1))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.optimizer.step()
            loss.item()  # the per-step read d2l makes to report perplexity
        _sync(self.device)
        return time.perf_counter() - started

    def generate(self, prefix: Sequence[int], num_preds: int) -> float:
        """Seconds to warm up on `prefix` and continue it greedily by `num_preds` ids."""
        _sync(self.device)
        started = time.perf_counter()
        with torch.no_grad():
            state = self.begin_state(1)
            logits, state = self.model(torch.as_tensor(list(prefix), device=self.device)[:, None], state)
            for _ in range(num_preds):
                next_id = int(logits[-1, 0].argmax())
                logits, state = self.model(torch.tensor([[next_id]], device=self.device), state)
        _sync(self.device)
        return time.perf_counter() - started


# -- the encoder-decoder of d2l 9.6-9.7 and 10.4 (1.0: 10.6-10.7, 11.4), as the book writes it ------

class _AdditiveAttention(nn.Module):
    """d2l's AdditiveAttention: w_v . tanh(W_q q + W_k k), masked softmax over the valid keys."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.W_q = nn.Linear(hidden_size, hidden_size, bias=False)
        self.W_k = nn.Linear(hidden_size, hidden_size, bias=False)
        self.w_v = nn.Linear(hidden_size, 1, bias=False)

    def forward(self, query, keys, valid):  # (N, H), (N, T, H), (N,) -> (N, T) scores
        return self.w_v(torch.tanh(self.W_q(query)[:, None] + self.W_k(keys)))[..., 0]


class _EncoderDecoder(nn.Module):
    """Embeddings, nn.GRU / nn.LSTM encoder and decoder, optional attention, nn.Linear head."""

    def __init__(self, cell: str, source_vocab: int, target_vocab: int, embed_size: int, hidden_size: int,
                 num_layers: int, attention: str):
        super().__init__()
        self.attention, self.hidden_size = attention, hidden_size
        self.source_embedding = nn.Embedding(source_vocab, embed_size)
        self.target_embedding = nn.Embedding(target_vocab, embed_size)
        self.encoder = _LAYERS[cell](embed_size, hidden_size, num_layers)
        self.decoder = _LAYERS[cell](embed_size + hidden_size, hidden_size, num_layers)
        self.scorer = _AdditiveAttention(hidden_size) if attention == "additive" else None
        self.head = nn.Linear(hidden_size, target_vocab)

    def forward(self, source, valid, decoder_inputs):
        encoded, state = self.encoder(self.source_embedding(source))
        embedded = self.target_embedding(decoder_inputs)
        if self.attention == "none":
            context = encoded[-1].expand(embedded.shape[0], -1, -1)
            outputs, _ = self.decoder(torch.cat((embedded, context), dim=-1), state)
            return self.head(outputs)
        keys = encoded.transpose(0, 1)  # (N, T, H)
        pad = torch.arange(keys.shape[1], device=keys.device)[None] >= valid[:, None]
        outputs = []
        for x in embedded:  # one step at a time: each query is the state before it
            query = (state[0] if isinstance(state, tuple) else state)[-1]
            if self.scorer is not None:
                scores = self.scorer(query, keys, valid)
            else:
                scores = torch.bmm(keys, query[:, :, None])[..., 0] / self.hidden_size ** 0.5
            weights = torch.softmax(scores.masked_fill(pad, -1e6), dim=-1)
            context = torch.bmm(weights[:, None], keys)[:, 0]
            output, state = self.decoder(torch.cat((x, context), dim=-1)[None], state)
            outputs.append(output[0])
        return self.head(torch.stack(outputs))


class Seq2SeqLoop:
    """An encoder-decoder, its Adam optimizer: `run(batches)` trains over ((source, source lengths,
    decoder inputs), (targets, target lengths)) batches with the loss averaged over real tokens,
    clipping and the loss read every step, and returns the seconds taken."""

    def __init__(self, cell: str, source_vocab: int, target_vocab: int, embed_size: int, hidden_size: int,
                 num_layers: int, attention: str, device: str, lr: float = 0.005, clip: float = 1.0):
        self.device = torch.device("cuda" if device == "gpu" else "cpu")
        torch.manual_seed(0)
        self.model = _EncoderDecoder(cell, source_vocab, target_vocab, embed_size, hidden_size, num_layers,
                                     attention).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.clip = clip

    def run(self, batches) -> float:
        _sync(self.device)
        started = time.perf_counter()
        for (source, valid, decoder_inputs), (targets, target_valid) in batches:
            source, valid, decoder_inputs, targets, target_valid = (
                torch.as_tensor(a, dtype=torch.int64).to(self.device)
                for a in (source, valid, decoder_inputs, targets, target_valid))
            logits = self.model(source, valid, decoder_inputs)
            losses = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                     reduction="none").reshape(targets.shape)
            mask = (torch.arange(targets.shape[0], device=self.device)[:, None] < target_valid[None]).float()
            loss = (losses * mask).sum() / mask.sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.optimizer.step()
            loss.item()
        _sync(self.device)
        return time.perf_counter() - started
