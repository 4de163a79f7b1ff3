"""The d2l book's language-model configurations, both editions, as presets of tasks.char_lm.

    python -m tasks.char_lm --preset d2l-0.17 --backend mxnet --cell gru --impl scratch

A preset is the value of every char_lm config field that the book fixes, per framework, cell
and implementation where the book's code differs between them; flags given beside it win.
seqcore's own defaults stay as they are: a preset only sets seqcore beside the book.

d2l 0.17.6, chapters 8.5, 8.6, 9.1 and 9.2 (`load_data_time_machine`, `RNNModelScratch`,
`RNNModel`, `train_ch8`): the first 10,000 characters of the per-line preprocessed text, batch
32, 35 steps, the sequential sampler with its inclusive offset and dropped tail, state carried,
SGD lr 1 with the gradients clipped to norm 1, 500 epochs; hidden 512 for the scratch RNN and
256 otherwise. `train_ch8` re-initialises the scratch models and MXNet's concise `RNNModel` with
N(0, 0.01) weights and zero biases; PyTorch's concise layers keep their uniform default. Gluon's
`rnn.RNN` runs ReLU (its default). The scratch cells hold one bias per gate, and the scratch GRU
applies its reset gate before the hidden matmul. The book measures no validation text: seqcore's
(the last 10% of the book, read in order) is kept.

d2l 1.0.3, chapters 9.5, 9.6, 10.1 and 10.2 (`TimeMachine`, `RNNScratch` / `GRUScratch` /
`LSTMScratch` with `RNNLMScratch`, `RNN` / `GRU` / `LSTM` with `RNNLM`, `Trainer`): the whole
text lower-cased at once, an alphabetical vocabulary, 10,000 training and 5,000 validation
windows of 32 + 1 tokens in shuffled batches of 1,024, a zero state for every batch, SGD with
`gradient_clip_val=1`, hidden 32; the RNN at lr 1 for 100 epochs, the GRU and the LSTM at lr 4 for
50. Scratch weights N(0, 0.01) with zero biases; MXNet's concise `RNNLM` calls `initialize()`
(Gluon's U(-0.07, 0.07), zero biases), PyTorch's keeps its defaults; Gluon's `rnn.RNN` runs ReLU.
"""
from __future__ import annotations

from typing import Any

from seqcore.data.corpus import Preprocess
from seqcore.data.sampling import Sampler
from seqcore.data.vocab import Order
from seqcore.errors import SeqcoreError
from seqcore.model.spec import Activation, Bias, Cell, GRUReset, Impl, Init

D2L_017, D2L_10 = "d2l-0.17", "d2l-1.0"
PRESETS = (D2L_017, D2L_10)

# What every run of an edition shares, as char_lm config fields.
_COMMON = {
    D2L_017: {"batch_size": 32, "num_steps": 35, "epochs": 500, "lr": 1.0, "clip": 1.0, "optimizer": "sgd",
              "schedule": "constant", "sampler": Sampler.D2L_SEQUENTIAL.value, "token": "char", "input": "onehot",
              "num_layers": 1, "dropout": 0.0, "max_tokens": 10_000, "val_fraction": 0.1,
              "preprocess": Preprocess.LINES.value, "vocab_order": Order.FREQUENCY.value,
              "train_windows": None, "val_windows": None, "prefixes": ("time traveller", "traveller"),
              "num_preds": 50, "eval_every": 10},
    D2L_10: {"batch_size": 1024, "num_steps": 32, "clip": 1.0, "optimizer": "sgd", "schedule": "constant",
             "sampler": Sampler.WINDOWS.value, "token": "char", "input": "onehot", "num_layers": 1, "dropout": 0.0,
             "hidden_size": 32, "max_tokens": 0, "preprocess": Preprocess.TEXT.value,
             "vocab_order": Order.ALPHABETICAL.value, "train_windows": 10_000, "val_windows": 5_000,
             "prefixes": ("it has",), "num_preds": 20, "eval_every": 1},
}
# d2l 1.0: (lr, epochs) per cell (9.5/9.6: the RNN; 10.1/10.2: the LSTM and the GRU).
_SCHEDULE_10 = {Cell.RNN: (1.0, 100), Cell.GRU: (4.0, 50), Cell.LSTM: (4.0, 50)}


def preset_values(name: str, backend: str, cell: str, impl: str) -> dict[str, Any]:
    """The char_lm config fields preset `name` sets for this backend, cell and implementation."""
    if name not in PRESETS:
        raise SeqcoreError(f"Unknown preset {name!r}: choose one of {', '.join(PRESETS)}.")
    cell_, impl_ = Cell(cell), Impl(impl)
    scratch = impl_ is Impl.SCRATCH
    values = dict(_COMMON[name])
    if name == D2L_017:
        values["hidden_size"] = 512 if cell_ is Cell.RNN and scratch else 256
        # train_ch8 re-initialises every MXNet Block and every scratch model with Normal(0.01)
        values["init"] = (Init.NORMAL if scratch or backend == "mxnet" else Init.UNIFORM).value
    else:
        values["lr"], values["epochs"] = _SCHEDULE_10[cell_]
        values["init"] = (Init.NORMAL if scratch else Init.GLUON if backend == "mxnet" else Init.UNIFORM).value
    gluon_rnn = cell_ is Cell.RNN and not scratch and backend == "mxnet"
    values["activation"] = (Activation.RELU if gluon_rnn else Activation.TANH).value
    values["gru_reset"] = (GRUReset.BEFORE if cell_ is Cell.GRU and scratch else GRUReset.AFTER).value
    values["bias"] = (Bias.INPUT if scratch else Bias.BOTH).value
    return values


def describe(name: str) -> str:
    """One line for --help: what the preset is."""
    return {D2L_017: "d2l 0.17.6's train_ch8 (chapters 8-9)", D2L_10: "d2l 1.0.3's Trainer (chapters 9-10)"}[name]
