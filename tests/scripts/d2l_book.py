"""The d2l book's own code, run as its readers run it: the oracle of tests/test_d2l.py.

Usage: python tests/scripts/d2l_book.py JOB.json
  PYTHONPATH: one d2l edition (unpacked wheel), its dependencies and a torchvision stand-in
  (tests/d2l_env.py); the working folder's ../data holds timemachine.txt, where d2l looks first.

JOB.json: {"edition": "0.17" | "1.0", "framework": "mxnet" | "torch", "task": ..., "out": DIR, ...}
  task "data":  the book's corpus, vocabularies and sampler output, to DIR/data.npz and vocab.json
  task "train": per case (cell, impl), the book's model from the canonical initial weights in
                "weights" (npz, seqcore names, prefix CASE/), trained on the batches in "batches"
                (npz, CASE/e{epoch}/{k}/x|y) with the book's training function; every step's loss
                to DIR/losses.npz
  task "book":  per case and seed (JOB "seeds", "epochs": None for the book's), the book's whole run
                from its own initialisation, data and sampler (seeded), its last epoch's training
                perplexity (1.0: and its validation perplexity), to DIR/book.json
  task "save":  per case, the book's model trained a few steps by the book's code from its own
                initialisation, saved as its readers save it, and its validation perplexity
                (0.17: on the batches of "val_batches"; 1.0: on its own validation windows), to
                DIR/CASE.* and DIR/manifest.json

Only this process loads d2l, and with it one framework. The notebook code the book prints but does
not ship in its package (0.17's get_params / rnn / gru / lstm, 1.0's GRUScratch, LSTMScratch, GRU,
LSTM) is written out below as the book prints it.
"""
from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import numpy as onp

JOB = json.loads(Path(sys.argv[1]).read_text())
EDITION, FRAMEWORK = JOB["edition"], JOB["framework"]
OUT = Path(JOB["out"])
MX = FRAMEWORK == "mxnet"

if MX:
    from d2l import mxnet as d2l
    from mxnet import gluon, init, np, npx
    from mxnet.gluon import nn, rnn
    npx.set_np()
else:
    from d2l import torch as d2l
    import torch
    from torch import nn
    from torch.nn import functional as F

GATES = {"rnn": ["h"], "gru": ["r", "z", "h"], "lstm": ["i", "f", "c", "o"]}  # canonical order, d2l names
NUM_HIDDENS = 32  # 1.0's size; 0.17's come from the weights


# ---------------------------------------------------------------- canonical -> the book's names

def scratch_arrays(cell: str, weights: dict) -> dict:
    """Canonical (G*H, I) blocks to the book's (I, H) matrices W_x?, W_h? and biases b_?; the
    output layer W_hq (H, V), b_q. A scratch cell holds one bias per gate (seqcore's bias input)."""
    hidden = weights["rnn.l0.weight_hh"].shape[1]
    found = {"W_hq": weights["head.weight"].T, "b_q": weights["head.bias"]}
    for k, gate in enumerate(GATES[cell]):
        rows = slice(k * hidden, (k + 1) * hidden)
        found[f"W_x{gate}"] = weights["rnn.l0.weight_ih"][rows].T
        found[f"W_h{gate}"] = weights["rnn.l0.weight_hh"][rows].T
        found[f"b_{gate}"] = weights["rnn.l0.bias_ih"][rows]
    return {name: onp.ascontiguousarray(value, dtype=onp.float32) for name, value in found.items()}


BOOK_ORDER_017 = {  # 0.17's get_params lists
    "rnn": ["W_xh", "W_hh", "b_h", "W_hq", "b_q"],
    "gru": ["W_xz", "W_hz", "b_z", "W_xr", "W_hr", "b_r", "W_xh", "W_hh", "b_h", "W_hq", "b_q"],
    "lstm": ["W_xi", "W_hi", "b_i", "W_xf", "W_hf", "b_f", "W_xo", "W_ho", "b_o", "W_xc", "W_hc", "b_c",
             "W_hq", "b_q"],
}


def tensor(value):
    return np.array(value) if MX else torch.tensor(value)


def leaf(value):
    """A trainable array of the book's scratch models (attach_grad / requires_grad)."""
    if MX:
        array = np.array(value)
        array.attach_grad()
        return array
    return torch.tensor(value, requires_grad=True)


# ---------------------------------------------------------------- d2l 0.17: chapters 8.5, 9.1, 9.2

def init_state_017(batch_size, num_hiddens, device, cell):
    zeros = (lambda: np.zeros((batch_size, num_hiddens), ctx=device)) if MX else (
        lambda: torch.zeros((batch_size, num_hiddens), device=device))
    return (zeros(), zeros()) if cell == "lstm" else (zeros(),)


def sigmoid(x):
    return npx.sigmoid(x) if MX else torch.sigmoid(x)


def tanh(x):
    return np.tanh(x) if MX else torch.tanh(x)


def dot(a, b):
    return np.dot(a, b) if MX else a @ b


def concat(outputs):
    return np.concatenate(outputs, axis=0) if MX else torch.cat(outputs, dim=0)


def rnn_017(inputs, state, params):
    W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        H = tanh(dot(X, W_xh) + dot(H, W_hh) + b_h)
        outputs.append(dot(H, W_hq) + b_q)
    return concat(outputs), (H,)


def gru_017(inputs, state, params):
    W_xz, W_hz, b_z, W_xr, W_hr, b_r, W_xh, W_hh, b_h, W_hq, b_q = params
    H, = state
    outputs = []
    for X in inputs:
        Z = sigmoid(dot(X, W_xz) + dot(H, W_hz) + b_z)
        R = sigmoid(dot(X, W_xr) + dot(H, W_hr) + b_r)
        H_tilda = tanh(dot(X, W_xh) + dot(R * H, W_hh) + b_h)
        H = Z * H + (1 - Z) * H_tilda
        outputs.append(dot(H, W_hq) + b_q)
    return concat(outputs), (H,)


def lstm_017(inputs, state, params):
    [W_xi, W_hi, b_i, W_xf, W_hf, b_f, W_xo, W_ho, b_o, W_xc, W_hc, b_c, W_hq, b_q] = params
    (H, C) = state
    outputs = []
    for X in inputs:
        I = sigmoid(dot(X, W_xi) + dot(H, W_hi) + b_i)
        F_ = sigmoid(dot(X, W_xf) + dot(H, W_hf) + b_f)
        O = sigmoid(dot(X, W_xo) + dot(H, W_ho) + b_o)
        C_tilda = tanh(dot(X, W_xc) + dot(H, W_hc) + b_c)
        C = F_ * C + I * C_tilda
        H = O * tanh(C)
        outputs.append(dot(H, W_hq) + b_q)
    return concat(outputs), (H, C)


def normal_017(shape):
    """The notebooks' normal(shape): N(0, 0.01)."""
    if MX:
        return np.random.normal(scale=0.01, size=shape)
    return torch.randn(size=shape) * 0.01


def book_params_017(cell, vocab_size, num_hiddens):
    """get_params as the notebooks write it: N(0, 0.01) weights, zero biases, in the book's order."""
    shapes = {"W_hq": (num_hiddens, vocab_size), "b_q": (vocab_size,)}
    for gate in GATES[cell]:
        shapes.update({f"W_x{gate}": (vocab_size, num_hiddens), f"W_h{gate}": (num_hiddens, num_hiddens),
                       f"b_{gate}": (num_hiddens,)})
    params = []
    for name in BOOK_ORDER_017[cell]:
        value = normal_017(shapes[name]) if name.startswith("W") else (
            np.zeros(shapes[name]) if MX else torch.zeros(shapes[name]))
        if MX:
            value.attach_grad()
        else:
            value.requires_grad_(True)
        params.append(value)
    return params


def model_017(cell, impl, vocab_size, num_hiddens, weights=None):
    """RNNModelScratch with the notebook's functions, or RNNModel around the framework's layer;
    `weights` (canonical) replace the book's initial values (train_ch8 re-initialises Gluon
    blocks: each parameter then starts from a Constant of its value)."""
    device = d2l.try_gpu()
    if impl == "scratch":
        forward = {"rnn": rnn_017, "gru": gru_017, "lstm": lstm_017}[cell]
        if weights is None:
            get_params = lambda v, h, d: book_params_017(cell, v, h)
        else:
            arrays = scratch_arrays(cell, weights)
            get_params = lambda v, h, d: [leaf(arrays[name]) for name in BOOK_ORDER_017[cell]]
        return d2l.RNNModelScratch(vocab_size, num_hiddens, device, get_params,
                                   lambda b, h, d: init_state_017(b, h, d, cell), forward)
    if MX:
        layer = {"rnn": rnn.RNN, "gru": rnn.GRU, "lstm": rnn.LSTM}[cell](num_hiddens)
        net = d2l.RNNModel(layer, vocab_size)
        if weights is not None:
            set_gluon_inits(net, weights, "dense")
        return net
    layer = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[cell](vocab_size, num_hiddens)
    net = d2l.RNNModel(layer, vocab_size)
    if weights is not None:
        net.load_state_dict(torch_state(weights, "rnn.", "linear"), strict=True)
    return net.to(device)


def set_gluon_inits(block, weights, head):
    """Each Gluon parameter initialised by a Constant of its canonical value (rnn.l0_* and the head)."""
    gluon_names = {"weight_ih": "i2h_weight", "weight_hh": "h2h_weight", "bias_ih": "i2h_bias", "bias_hh": "h2h_bias"}
    params = {}
    rnn_layer = block.rnn if hasattr(block.rnn, "l0_i2h_weight") else block.rnn.rnn
    for name, gluon_name in gluon_names.items():
        params[getattr(rnn_layer, f"l0_{gluon_name}")] = weights[f"rnn.l0.{name}"]
    head_block = getattr(block, head)
    params[head_block.weight] = weights["head.weight"]
    params[head_block.bias] = weights["head.bias"]
    for param, value in params.items():
        param.init = Given(value)
    return params


if MX:
    class Given(init.Initializer):
        """The initialiser of one parameter: its given value (what train_ch8's force_reinit draws)."""

        def __init__(self, value):
            super().__init__()
            self.value = onp.asarray(value, dtype=onp.float32)

        def _init_weight(self, _, arr):
            arr[:] = np.array(self.value, dtype=arr.dtype, ctx=arr.ctx)


def torch_state(weights, rnn_prefix, head):
    state = {f"{rnn_prefix}{part}_l0": torch.tensor(weights[f"rnn.l0.{part}"])
             for part in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    state[f"{head}.weight"] = torch.tensor(weights["head.weight"])
    state[f"{head}.bias"] = torch.tensor(weights["head.bias"])
    return state


class RecordedBatches:
    """An epoch of recorded batches at each iteration, as train_ch8's `train_iter` or 1.0's loader."""

    def __init__(self, epochs, wrap):
        self.epochs, self.wrap, self.count = epochs, wrap, 0

    def __len__(self):
        return len(self.epochs[0])

    def __iter__(self):
        batches = self.epochs[self.count]
        self.count += 1
        return iter([tuple(self.wrap(a) for a in batch) for batch in batches])


def recorded_epochs(archive, case):
    epochs = {}
    for key in archive.files:
        if key.startswith(case + "/"):
            _, epoch, step, part = key.split("/")
            epochs.setdefault(int(epoch[1:]), {}).setdefault(int(step), {})[part] = archive[key]
    return [[(steps[k]["x"], steps[k]["y"]) for k in sorted(steps)] for _, steps in sorted(epochs.items())]


def recording_losses():
    """The loss class train_ch8 makes (Gluon's SoftmaxCrossEntropyLoss, PyTorch's CrossEntropyLoss),
    seen by d2l as one that also keeps each step's mean loss; the values are not changed."""
    losses = []
    base = gluon.loss.SoftmaxCrossEntropyLoss if MX else nn.CrossEntropyLoss

    class Recording(base):
        def forward(self, *args):
            out = super().forward(*args)
            losses.append(float(out.mean()))
            return out

    if MX:  # d2l reads gluon.loss.SoftmaxCrossEntropyLoss through its module global `gluon`
        class Loss:
            SoftmaxCrossEntropyLoss = Recording

            def __getattr__(self, name):
                return getattr(gluon.loss, name)

        class Gluon:
            loss = Loss()

            def __getattr__(self, name):
                return getattr(gluon, name)
        d2l.gluon = Gluon()
    else:
        d2l.nn = type("nn", (), {"CrossEntropyLoss": Recording, "__getattr__": lambda self, n: getattr(nn, n)})()
    return losses


def vocab_017():
    return d2l.load_data_time_machine(32, 35)[1]


def train_017(case, canonical, epochs):
    """train_ch8 over the recorded epochs from the canonical weights: every step's loss."""
    cell, impl = case.split("-")
    vocab = vocab_017()
    losses = recording_losses()
    net = model_017(cell, impl, len(vocab), canonical["rnn.l0.weight_hh"].shape[1], canonical)
    wrap = (lambda a: np.array(a.tolist())) if MX else (lambda a: torch.tensor(a.tolist()))
    d2l.train_ch8(net, RecordedBatches(epochs, wrap), vocab, 1, len(epochs), d2l.try_gpu())
    return onp.array(losses)


# ---------------------------------------------------------------- d2l 1.0: chapters 9.5, 9.6, 10.1, 10.2

def book_classes_10():
    """The notebook classes of 10.1 and 10.2 (LSTMScratch, GRUScratch, LSTM, GRU), as printed."""

    class GRUScratch(d2l.Module):
        def __init__(self, num_inputs, num_hiddens, sigma=0.01):
            super().__init__()
            self.save_hyperparameters()
            if MX:
                init_weight = lambda *shape: d2l.randn(*shape) * sigma
                triple = lambda: (init_weight(num_inputs, num_hiddens), init_weight(num_hiddens, num_hiddens),
                                  d2l.zeros(num_hiddens))
            else:
                init_weight = lambda *shape: nn.Parameter(d2l.randn(*shape) * sigma)
                triple = lambda: (init_weight(num_inputs, num_hiddens), init_weight(num_hiddens, num_hiddens),
                                  nn.Parameter(d2l.zeros(num_hiddens)))
            self.W_xz, self.W_hz, self.b_z = triple()  # Update gate
            self.W_xr, self.W_hr, self.b_r = triple()  # Reset gate
            self.W_xh, self.W_hh, self.b_h = triple()  # Candidate hidden state

        def forward(self, inputs, H=None):
            if H is None:
                H = d2l.zeros((inputs.shape[1], self.num_hiddens), **device_of(inputs))
            outputs = []
            for X in inputs:
                Z = d2l.sigmoid(d2l.matmul(X, self.W_xz) + d2l.matmul(H, self.W_hz) + self.b_z)
                R = d2l.sigmoid(d2l.matmul(X, self.W_xr) + d2l.matmul(H, self.W_hr) + self.b_r)
                H_tilde = d2l.tanh(d2l.matmul(X, self.W_xh) + d2l.matmul(R * H, self.W_hh) + self.b_h)
                H = Z * H + (1 - Z) * H_tilde
                outputs.append(H)
            return outputs, H

    class LSTMScratch(d2l.Module):
        def __init__(self, num_inputs, num_hiddens, sigma=0.01):
            super().__init__()
            self.save_hyperparameters()
            if MX:
                init_weight = lambda *shape: d2l.randn(*shape) * sigma
                triple = lambda: (init_weight(num_inputs, num_hiddens), init_weight(num_hiddens, num_hiddens),
                                  d2l.zeros(num_hiddens))
            else:
                init_weight = lambda *shape: nn.Parameter(d2l.randn(*shape) * sigma)
                triple = lambda: (init_weight(num_inputs, num_hiddens), init_weight(num_hiddens, num_hiddens),
                                  nn.Parameter(d2l.zeros(num_hiddens)))
            self.W_xi, self.W_hi, self.b_i = triple()  # Input gate
            self.W_xf, self.W_hf, self.b_f = triple()  # Forget gate
            self.W_xo, self.W_ho, self.b_o = triple()  # Output gate
            self.W_xc, self.W_hc, self.b_c = triple()  # Input node

        def forward(self, inputs, H_C=None):
            if H_C is None:
                H = d2l.zeros((inputs.shape[1], self.num_hiddens), **device_of(inputs))
                C = d2l.zeros((inputs.shape[1], self.num_hiddens), **device_of(inputs))
            else:
                H, C = H_C
            outputs = []
            for X in inputs:
                I = d2l.sigmoid(d2l.matmul(X, self.W_xi) + d2l.matmul(H, self.W_hi) + self.b_i)
                F_ = d2l.sigmoid(d2l.matmul(X, self.W_xf) + d2l.matmul(H, self.W_hf) + self.b_f)
                O = d2l.sigmoid(d2l.matmul(X, self.W_xo) + d2l.matmul(H, self.W_ho) + self.b_o)
                C_tilde = d2l.tanh(d2l.matmul(X, self.W_xc) + d2l.matmul(H, self.W_hc) + self.b_c)
                C = F_ * C + I * C_tilde
                H = O * d2l.tanh(C)
                outputs.append(H)
            return outputs, (H, C)

    class GRU(d2l.RNN):
        def __init__(self, num_inputs, num_hiddens):
            d2l.Module.__init__(self)
            self.save_hyperparameters()
            self.rnn = rnn.GRU(num_hiddens) if MX else nn.GRU(num_inputs, num_hiddens)

    class LSTM(d2l.RNN):
        def __init__(self, num_inputs, num_hiddens):
            d2l.Module.__init__(self)
            self.save_hyperparameters()
            self.rnn = rnn.LSTM(num_hiddens) if MX else nn.LSTM(num_inputs, num_hiddens)

        def forward(self, inputs, H_C=None):
            if MX and H_C is None:
                H_C = self.rnn.begin_state(inputs.shape[1], ctx=inputs.ctx)
            return self.rnn(inputs, H_C)

    return {"scratch": {"rnn": d2l.RNNScratch, "gru": GRUScratch, "lstm": LSTMScratch},
            "concise": {"rnn": d2l.RNN, "gru": GRU, "lstm": LSTM}}


def device_of(inputs):
    return {"ctx": inputs.ctx} if MX else {"device": inputs.device}


LR_10 = {"rnn": 1, "gru": 4, "lstm": 4}


def model_10(cell, impl, vocab_size, num_hiddens=NUM_HIDDENS, weights=None):
    """RNNLMScratch around the scratch cell, or RNNLM around the framework's layer (d2l.RNN and
    the notebooks' GRU / LSTM), lr as the book trains it; `weights` replace the initial values."""
    classes = book_classes_10()[impl]
    if impl == "concise" and MX:
        layer = classes[cell](num_hiddens=num_hiddens) if cell == "rnn" else classes[cell](vocab_size, num_hiddens)
        model = d2l.RNNLM(layer, vocab_size=vocab_size, lr=LR_10[cell])
    elif impl == "concise":
        model = d2l.RNNLM(classes[cell](num_inputs=vocab_size, num_hiddens=num_hiddens), vocab_size=vocab_size,
                          lr=LR_10[cell])
    else:
        model = d2l.RNNLMScratch(classes[cell](num_inputs=vocab_size, num_hiddens=num_hiddens),
                                 vocab_size=vocab_size, lr=LR_10[cell])
    if impl == "concise":  # finish the deferred (Gluon) / lazy (LazyLinear) initialisation
        dummy = d2l.tensor([[0]]) if not MX else np.array([[0.0]])
        if MX:
            model(dummy)
        else:
            with torch.no_grad():
                model(dummy)
    model.board.display = False
    if weights is None:
        return model
    if impl == "scratch":
        arrays = scratch_arrays(cell, weights)
        for name, value in arrays.items():
            owner = model if name in ("W_hq", "b_q") else model.rnn
            if MX:
                setattr(owner, name, leaf(value))
            else:
                getattr(owner, name).data.copy_(torch.tensor(value))
    elif MX:
        for param, value in set_gluon_inits(model, weights, "linear").items():
            param.set_data(np.array(value))
    else:
        model.load_state_dict(torch_state(weights, "rnn.rnn.", "linear"), strict=True)
    return model


def recorded_data(epochs, wrap):
    """d2l 1.0's DataModule whose training loader hands out the recorded batches (no validation)."""

    class RecordedData(d2l.DataModule):
        def __init__(self):
            super().__init__()
            self.loader = RecordedBatches(epochs, wrap)

        def train_dataloader(self):
            return self.loader

        def val_dataloader(self):
            return None

    return RecordedData()


def vocab_10():
    return d2l.TimeMachine(batch_size=1024, num_steps=32).vocab


def train_10(case, canonical, epochs):
    """Trainer.fit over the recorded epochs from the canonical weights: every step's loss."""
    cell, impl = case.split("-")
    model = model_10(cell, impl, len(vocab_10()), canonical["rnn.l0.weight_hh"].shape[1], canonical)
    losses = []
    step = model.training_step
    model.training_step = lambda batch: record(losses, step(batch))
    wrap = (lambda a: np.array(a.tolist())) if MX else (lambda a: torch.tensor(a.tolist()))
    trainer = d2l.Trainer(max_epochs=len(epochs), gradient_clip_val=1, num_gpus=1)
    trainer.fit(model, recorded_data(epochs, wrap))
    return onp.array(losses)


def train(cases, weights, batches, twin):
    """Per case the step losses; with `twin`, also those of the same batches with their rows in
    another order (one permutation for every batch of a size, so carried rows still continue):
    the same sums in another float32 order, i.e. how far round-off alone moves the book's own
    trajectory, the yardstick of its chaos."""
    found = {}
    for case in cases:
        canonical = {k.split("/", 1)[1]: weights[k] for k in weights.files if k.startswith(case + "/")}
        epochs = recorded_epochs(batches, case)
        run = train_017 if EDITION == "0.17" else train_10
        found[case] = run(case, canonical, epochs)
        if twin:
            orders = {}
            order = lambda n: orders.setdefault(n, onp.random.default_rng(n).permutation(n))
            permuted = [[(x[order(len(x))], y[order(len(x))]) for x, y in epoch] for epoch in epochs]
            found[f"{case}/twin"] = run(case, canonical, permuted)
    return found


def record(losses, loss):
    losses.append(float(loss))
    return loss


# ---------------------------------------------------------------- data: what the book's loaders hand out

def data_017(found):
    corpus, vocab = d2l.load_corpus_time_machine(-1)
    found["corpus"] = onp.array(corpus)
    found["train_corpus"] = onp.array(d2l.load_data_time_machine(32, 35)[0].corpus)
    draws = random.randint  # the book draws its offset with random.randint; each one is pinned in turn
    for offset in range(0, 36):
        random.randint = lambda a, b, offset=offset: offset if (a, b) == (0, 35) else draws(a, b)
        batches = list(d2l.seq_data_iter_sequential(found["train_corpus"].tolist(), 32, 35))
        found[f"sequential/{offset}"] = onp.stack([to_numpy(x) for x, _ in batches]).astype(onp.int64)
        found[f"sequential_y/{offset}"] = onp.stack([to_numpy(y) for _, y in batches]).astype(onp.int64)
    for offset in (0, 7, 34):
        random.randint = lambda a, b, offset=offset: offset if (a, b) == (0, 34) else draws(a, b)
        batches = list(d2l.seq_data_iter_random(found["train_corpus"].tolist(), 32, 35))
        found[f"random/{offset}"] = onp.concatenate([to_numpy(x) for x, _ in batches]).astype(onp.int64)
    random.randint = draws
    words = d2l.tokenize(d2l.read_time_machine(), "word")
    return {"char": vocab.idx_to_token, "word": d2l.Vocab(words).idx_to_token}


def data_10(found):
    data = d2l.TimeMachine(batch_size=1024, num_steps=32)
    found["X"], found["Y"] = to_numpy(data.X).astype(onp.int64), to_numpy(data.Y).astype(onp.int64)
    raw = data._download()
    found["corpus"] = onp.array(data.build(raw)[0])
    random.seed(0)
    onp.random.seed(0)
    if not MX:
        torch.manual_seed(0)
    for split, loader in (("train", data.train_dataloader()), ("val", data.val_dataloader())):
        for epoch in range(2):
            batches = [(to_numpy(x).astype(onp.int64), to_numpy(y).astype(onp.int64)) for x, y in loader]
            found[f"{split}/{epoch}/x"] = onp.concatenate([x for x, _ in batches])
            found[f"{split}/{epoch}/y"] = onp.concatenate([y for _, y in batches])
            found[f"{split}/{epoch}/sizes"] = onp.array([len(x) for x, _ in batches])
    words = data._preprocess(raw).split()
    return {"char": data.vocab.idx_to_token, "word": d2l.Vocab(words).idx_to_token}


def to_numpy(array):
    return array.asnumpy() if MX else array.numpy()


# ---------------------------------------------------------------- save: the book's models as readers save them

def seed_everything(seed=0):
    random.seed(seed)
    onp.random.seed(seed)
    if MX:
        import mxnet
        mxnet.random.seed(seed)
    else:
        torch.manual_seed(seed)


def validation_loss_017(net, val_batches):
    """Mean cross-entropy of the book's net over the given sequential batches, state carried
    (as train_epoch_ch8 carries it), the way d2l would measure held-out text."""
    total, count, state = 0.0, 0, None
    for x, y in val_batches:
        X = np.array(x.tolist()) if MX else torch.tensor(x.tolist())
        if state is None or state_batch(state) != x.shape[0]:
            state = net.begin_state(batch_size=x.shape[0], **({"ctx": d2l.try_gpu()} if MX else
                                                                {"device": d2l.try_gpu()}))
        if MX:
            y_hat, state = net(X, state)
            l = gluon.loss.SoftmaxCrossEntropyLoss()(y_hat, np.array(y.T.reshape(-1).tolist()))
            total += float(l.sum())
        else:
            with torch.no_grad():
                y_hat, state = net(X, state)
                total += float(F.cross_entropy(y_hat, torch.tensor(y.T.reshape(-1)), reduction="sum"))
        count += y.size
    return total / count


def state_batch(state):
    first = state[0] if isinstance(state, (tuple, list)) else state
    return first.shape[-2]


def save_017(case, word=False):
    """Train the book's model two epochs with train_ch8 (its own data, sampler and initialisation),
    then save it as the book's readers save it."""
    cell, impl = case.split("-")
    seed_everything()
    if word:  # a word-level model the book's way: its tokenize, Vocab and sequential sampler
        lines = d2l.read_time_machine()
        vocab = d2l.Vocab(d2l.tokenize(lines, "word"))
        corpus = [vocab[token] for line in d2l.tokenize(lines, "word") for token in line][:10000]

        class WordLoader:
            def __iter__(self):
                return d2l.seq_data_iter_sequential(corpus, 32, 35)
        train_iter, hidden = WordLoader(), 16
    else:
        train_iter, vocab = d2l.load_data_time_machine(32, 35)
        hidden = 512 if case == "rnn-scratch" else 256
    net = model_017(cell, impl, len(vocab), hidden)
    d2l.train_ch8(net, train_iter, vocab, 1, 2, d2l.try_gpu())
    path = OUT / f"{'word-' if word else ''}{case}.{'params' if MX else 'pt'}"
    if impl == "scratch":
        (npx.save(str(path), net.params) if MX else torch.save(net.params, path))  # the list get_params made
    elif MX:
        net.save_parameters(str(path))
    else:
        torch.save(net.state_dict(), path)
    return net, vocab, path


def save_10(case):
    """Train the book's model one epoch with d2l.Trainer on its own TimeMachine, then save it."""
    cell, impl = case.split("-")
    seed_everything()
    data = d2l.TimeMachine(batch_size=1024, num_steps=32)
    model = model_10(cell, impl, len(data.vocab))
    d2l.Trainer(max_epochs=1, gradient_clip_val=1, num_gpus=1).fit(model, data)
    path = OUT / f"{case}.{'params' if MX else 'pt'}"
    if impl == "scratch" and MX:  # plain arrays, no Gluon parameters: npx.save of a dict, or of the list
        named = {"W_hq": model.W_hq, "b_q": model.b_q}
        named.update({f"rnn.{name}": value for name, value in vars(model.rnn).items()
                      if isinstance(value, np.ndarray)})
        npx.save(str(path), named)
        npx.save(str(OUT / f"{case}.list.params"), model.get_scratch_params())
    elif MX:
        model.save_parameters(str(path))
    else:
        torch.save(model.state_dict(), path)
    total, count = 0.0, 0
    for X, Y in data.val_dataloader():  # the book's validation windows, through its own loss
        if MX:
            l = model.loss(model(X), Y)
        else:
            with torch.no_grad():
                l = model.loss(model(X), Y)
        total += float(l) * Y.size if MX else float(l) * Y.numel()
        count += Y.size if MX else Y.numel()
    return data.vocab, path, math.exp(total / count)


def book_run(case, seed, epochs=None):
    """The book's own training of `case`, seeded: its final training (and 1.0: validation) perplexity."""
    cell, impl = case.split("-")
    seed_everything(seed)
    if EDITION == "0.17":
        train_iter, vocab = d2l.load_data_time_machine(32, 35)
        net = model_017(cell, impl, len(vocab), 512 if case == "rnn-scratch" else 256)
        losses = recording_losses()
        epochs = epochs or 500
        d2l.train_ch8(net, train_iter, vocab, 1, epochs, d2l.try_gpu())
        per_epoch = len(losses) // epochs  # equal batches: train_epoch_ch8's token-weighted mean is the mean
        return {"train_ppl": math.exp(float(onp.mean(losses[-per_epoch:]))), "val_ppl": None}
    data = d2l.TimeMachine(batch_size=1024, num_steps=32)
    model = model_10(cell, impl, len(data.vocab))
    losses, step = [], model.training_step
    model.training_step = lambda batch: record(losses, step(batch))
    epochs = epochs or {"rnn": 100, "gru": 50, "lstm": 50}[cell]
    d2l.Trainer(max_epochs=epochs, gradient_clip_val=1, num_gpus=1).fit(model, data)
    sizes = [min(1024, data.num_train - k) for k in range(0, data.num_train, 1024)]  # the loader's batches
    last = onp.array(losses[-len(sizes):])
    total, count = 0.0, 0
    for X, Y in data.val_dataloader():
        l = model.loss(model(X), Y)
        total, count = total + float(l) * Y.shape[0], count + Y.shape[0]
    return {"train_ppl": math.exp(float((last * sizes).sum() / sum(sizes))), "val_ppl": math.exp(total / count)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    task = JOB["task"]
    if task == "data":
        found = {}
        vocabs = data_017(found) if EDITION == "0.17" else data_10(found)
        onp.savez(OUT / "data.npz", **found)
        (OUT / "vocab.json").write_text(json.dumps(vocabs))
    elif task == "book":
        found = [{"case": case, "seed": seed, **book_run(case, seed, JOB.get("epochs"))}
                 for case in JOB["cases"] for seed in JOB["seeds"]]
        (OUT / "book.json").write_text(json.dumps(found, indent=1))
    elif task == "train":
        weights, batches = onp.load(JOB["weights"]), onp.load(JOB["batches"])
        losses = train(JOB["cases"], weights, batches, JOB.get("twin", False))
        onp.savez(OUT / "losses.npz", **losses)
    else:
        manifest = {}
        for case in JOB["cases"]:
            if EDITION == "0.17":
                word = case.startswith("word-")
                net, vocab, path = save_017(case.removeprefix("word-"), word)
                val = onp.load(JOB["val_batches"][("word" if word else "char")])
                batches = [(val[f"{k}/x"], val[f"{k}/y"]) for k in range(len(val.files) // 2)]
                ppl = math.exp(validation_loss_017(net, batches))
            else:
                vocab, path, ppl = save_10(case)
            vocab_path = OUT / f"{case}.vocab.json"
            vocab_path.write_text(json.dumps(vocab.idx_to_token))
            (OUT / f"{case}.token_to_idx.json").write_text(json.dumps(vocab.token_to_idx))
            manifest[case] = {"weights": str(path), "vocab": str(vocab_path), "val_ppl": ppl}
        (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    main()
