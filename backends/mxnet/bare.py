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


# -- the encoder-decoder of d2l 9.6-9.7 and 10.4 (1.0: 10.6-10.7, 11.4), as the book writes it ------

class _EncoderDecoder(gluon.Block):
    """Embeddings, rnn.GRU / rnn.LSTM encoder and decoder, optional attention, Dense head; the
    fused layers hybridised (the attention decoder steps through time in Python, as the book's)."""

    def __init__(self, cell: str, source_vocab: int, target_vocab: int, embed_size: int, hidden_size: int,
                 num_layers: int, attention: str):
        super().__init__()
        self.attention, self.hidden_size, self.num_layers = attention, hidden_size, num_layers
        self.num_states = 2 if cell == "lstm" else 1
        tanh = {"activation": "tanh"} if cell == "rnn" else {}  # Gluon's RNN default is relu
        with self.name_scope():
            self.source_embedding = gluon.nn.Embedding(source_vocab, embed_size)
            self.target_embedding = gluon.nn.Embedding(target_vocab, embed_size)
            self.encoder = _LAYERS[cell](hidden_size, num_layers, input_size=embed_size, **tanh)
            self.decoder = _LAYERS[cell](hidden_size, num_layers, input_size=embed_size + hidden_size, **tanh)
            if attention == "additive":  # d2l's AdditiveAttention
                self.W_q = gluon.nn.Dense(hidden_size, use_bias=False, flatten=False, in_units=hidden_size)
                self.W_k = gluon.nn.Dense(hidden_size, use_bias=False, flatten=False, in_units=hidden_size)
                self.w_v = gluon.nn.Dense(1, use_bias=False, flatten=False, in_units=hidden_size)
            self.head = gluon.nn.Dense(target_vocab, flatten=False, in_units=hidden_size)
        self.encoder.hybridize(static_alloc=True)
        self.decoder.hybridize(static_alloc=True)

    def forward(self, source, valid, decoder_inputs):
        begin = [mx.np.zeros((self.num_layers, source.shape[1], self.hidden_size), ctx=source.ctx)
                 for _ in range(self.num_states)]
        encoded, state = self.encoder(self.source_embedding(source), begin)
        embedded = self.target_embedding(decoder_inputs)
        if self.attention == "none":
            context = mx.np.broadcast_to(encoded[-1:], embedded.shape[:2] + (self.hidden_size,))
            outputs, _ = self.decoder(mx.np.concatenate([embedded, context], axis=-1), state)
            return self.head(outputs)
        keys = encoded.transpose(1, 0, 2)  # (N, T, H)
        projected = self.W_k(keys) if self.attention == "additive" else keys
        outputs = []
        for t in range(embedded.shape[0]):  # one step at a time: each query is the state before it
            query = state[0][-1]
            if self.attention == "additive":
                scores = self.w_v(mx.np.tanh(mx.np.expand_dims(self.W_q(query), 1) + projected))[..., 0]
            else:
                scores = (keys * mx.np.expand_dims(query, 1)).sum(axis=-1) / self.hidden_size ** 0.5
            masked = npx.sequence_mask(scores.T, valid, use_sequence_length=True, value=-1e6, axis=0).T
            weights = npx.softmax(masked, axis=-1)
            context = (mx.np.expand_dims(weights, -1) * keys).sum(axis=1)
            output, state = self.decoder(mx.np.expand_dims(mx.np.concatenate([embedded[t], context], axis=-1), 0),
                                         state)
            outputs.append(output[0])
        return self.head(mx.np.stack(outputs))


class Seq2SeqLoop:
    """An encoder-decoder, its Adam trainer: `run(batches)` trains over ((source, source lengths,
    decoder inputs), (targets, target lengths)) batches with the loss averaged over real tokens,
    clipping and the loss read every step, and returns the seconds taken."""

    def __init__(self, cell: str, source_vocab: int, target_vocab: int, embed_size: int, hidden_size: int,
                 num_layers: int, attention: str, device: str, lr: float = 0.005, clip: float = 1.0):
        self.ctx = mx.gpu(0) if device == "gpu" else mx.cpu()
        mx.random.seed(0)
        self.model = _EncoderDecoder(cell, source_vocab, target_vocab, embed_size, hidden_size, num_layers,
                                     attention)
        self.model.initialize(mx.init.Xavier(), ctx=self.ctx)
        self.trainer = gluon.Trainer(self.model.collect_params(), "adam", {"learning_rate": lr})
        self.clip = clip

    def run(self, batches) -> float:
        mx.nd.waitall()
        started = time.perf_counter()
        params = [p for p in self.model.collect_params().values() if p.grad_req != "null"]
        for (source, valid, decoder_inputs), (targets, target_valid) in batches:
            source, decoder_inputs, targets = (mx.np.array(a, dtype=np.int32, ctx=self.ctx)
                                               for a in (source, decoder_inputs, targets))
            valid = mx.np.array(valid, dtype=np.float32, ctx=self.ctx)
            mask = mx.np.array(np.arange(targets.shape[0])[:, None] < np.asarray(target_valid)[None],
                               dtype=np.float32, ctx=self.ctx)
            with autograd.record():
                logits = self.model(source, valid, decoder_inputs)
                losses = -npx.pick(npx.log_softmax(logits, axis=-1), targets, axis=-1)
                loss = (losses * mask).sum() / mask.sum()
            loss.backward()
            _clip([p.grad(self.ctx) for p in params], self.clip)
            self.trainer.step(1)
            float(loss)
        mx.nd.waitall()
        return time.perf_counter() - started
