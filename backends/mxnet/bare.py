"""Gluon's own training loop for a language model, written as its users write it (d2l's MXNet
RNNModel and train_epoch, hybridised), without seqcore: the benchmark's ceiling for the MXNet
backend.

Same work per step as seqcore's protocol: one-hot or embedding input, one fused gluon.rnn layer,
Dense(flatten=False) head, mean cross-entropy, global-norm clipping (d2l's grad_clipping),
SGD through gluon.Trainer, the loss read every step, the state carried and detached.
"""
from __future__ import annotations

import time
from typing import Sequence

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon, npx

npx.set_np()

_LAYERS = {"rnn": gluon.rnn.RNN, "gru": gluon.rnn.GRU, "lstm": gluon.rnn.LSTM}


class _LanguageModel(gluon.HybridBlock):
    """Token ids (T, N) -> logits (T, N, V) and the new state (a list)."""

    def __init__(self, cell: str, vocab_size: int, hidden_size: int, embed_size: int = 0):
        super().__init__()
        self.vocab_size = vocab_size
        self.use_embedding = bool(embed_size)
        with self.name_scope():
            if embed_size:
                self.embedding = gluon.nn.Embedding(vocab_size, embed_size)
            options = {"activation": "tanh"} if cell == "rnn" else {}
            self.rnn = _LAYERS[cell](hidden_size, input_size=embed_size or vocab_size, **options)
            self.head = gluon.nn.Dense(vocab_size, flatten=False, in_units=hidden_size)

    def hybrid_forward(self, F, ids, *state):
        x = self.embedding(ids) if self.use_embedding else F.npx.one_hot(ids, self.vocab_size)
        outputs, state = self.rnn(x, list(state))
        return self.head(outputs), state


def _clip(grads: list, max_norm: float) -> None:
    """d2l's grad_clipping (gluon.utils.clip_global_norm takes only legacy NDArrays in numpy mode)."""
    norm = float(mx.np.sqrt(sum((g * g).sum() for g in grads)))
    if norm > max_norm:
        for g in grads:
            g[:] *= max_norm / norm


class Loop:
    """A model, its trainer and its carried state: `run(batches)` trains over them and returns
    the seconds taken (waiting for the engine at the end)."""

    def __init__(self, cell: str, vocab_size: int, hidden_size: int, device: str,
                 embed_size: int = 0, lr: float = 1.0, clip: float = 1.0):
        self.ctx = mx.gpu(0) if device == "gpu" else mx.cpu()
        mx.random.seed(0)
        self.model = _LanguageModel(cell, vocab_size, hidden_size, embed_size)
        self.model.initialize(mx.init.Xavier(), ctx=self.ctx)
        self.model.hybridize(static_alloc=True, static_shape=True)
        self.trainer = gluon.Trainer(self.model.collect_params(), "sgd", {"learning_rate": lr})
        self.loss = gluon.loss.SoftmaxCrossEntropyLoss()
        self.clip = clip
        self.hidden_size = hidden_size
        self.num_states = 2 if cell == "lstm" else 1
        self.state = None

    def begin_state(self, batch_size: int) -> list:
        """Zeros of (1, N, H): [h], or [h, c] for the LSTM."""
        return [mx.np.zeros((1, batch_size, self.hidden_size), ctx=self.ctx) for _ in range(self.num_states)]

    def run(self, batches: Sequence[tuple[np.ndarray, np.ndarray]]) -> float:
        mx.nd.waitall()
        started = time.perf_counter()
        params = [p for p in self.model.collect_params().values() if p.grad_req != "null"]
        for inputs, targets in batches:  # time-major (T, N) ids
            X = mx.np.array(inputs, dtype=np.int32, ctx=self.ctx)
            Y = mx.np.array(targets, dtype=np.int32, ctx=self.ctx)
            if self.state is None:
                self.state = self.begin_state(X.shape[1])
            state = [s.detach() for s in self.state]
            with autograd.record():
                logits, self.state = self.model(X, *state)
                loss = self.loss(logits, Y).mean()
            loss.backward()
            _clip([p.grad(self.ctx) for p in params], self.clip)
            self.trainer.step(1)
            float(loss)  # the per-step read d2l makes to report perplexity
        mx.nd.waitall()
        return time.perf_counter() - started

    def generate(self, prefix: Sequence[int], num_preds: int) -> float:
        """Seconds to warm up on `prefix` and continue it greedily by `num_preds` ids."""
        mx.nd.waitall()
        started = time.perf_counter()
        state = self.begin_state(1)
        logits, state = self.model(mx.np.array(np.asarray(prefix)[:, None], dtype=np.int32, ctx=self.ctx), *state)
        for _ in range(num_preds):
            next_id = int(logits[-1, 0].argmax())
            logits, state = self.model(mx.np.array([[next_id]], dtype=np.int32, ctx=self.ctx), *state)
        mx.nd.waitall()
        return time.perf_counter() - started
