"""A networks.Graph compiled into MXNet symbols, run by bound executors, with H2O's optimiser.

Each graph node becomes one MXNet symbol named after the node, so parameters are '<node>_weight',
'<node>_bias', '<node>_gamma', '<node>_beta' and batch-norm statistics '<node>_moving_mean' and
'<node>_moving_var'. MXNet's layouts are PyTorch's (OIHW convolutions, (out, in) dense weights), so
get_state()/set_state() only rename.

Two symbols are built from the graph: a training one (the network, its loss through MakeLoss and
the new batch-norm running statistics) and an inference one (running statistics, no loss). Executors
are bound once per batch size and kept, all sharing the same parameter, gradient and statistics
arrays. The optimisers (optimizers.py) follow torch.optim.SGD (momentum, nesterov) and torch.optim.Adadelta:

* SGD uses MXNet's fused sgd_mom_update / nag_mom_update, whose momentum buffer holds -lr * torch's
  buffer; when the learning rate anneals the buffer is rescaled by new_lr / old_lr first, so the
  steps equal torch's (buf = m * buf + g; w -= lr * (g + m * buf) or lr * buf).
* Batch normalisation trains on batch statistics like torch and, like torch, feeds the unbiased
  batch variance into running_var. MXNet's own running-statistics update uses the biased variance
  (and with MKL-DNN on the CPU it left them unchanged in our checks), so the training symbol computes
  torch's update itself and the BatchNorm operator writes its own into scratch arrays nobody reads.
* Executors are bound without MXNet's MKL-DNN graph fusion (see runtime.unfused_binding()).
* Steps compute in float32 only (precision='bfloat16'/'float16' raise ParameterError; 'auto' is float32):
  MXNet 1.9.1's AMP (mxnet.contrib.amp) rewrites symbols for float16 on GPUs, and its bfloat16 lists left our
  CPU symbols unconverted. compile=True changes nothing: bound executors are static graphs already.
"""
from __future__ import annotations

import math
from abc import abstractmethod
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from deepwater.networks import Graph, Node
from deepwater.specs import OptimizerSpec, TaskSpec

from ..base import BaseNet, LazyLoss, layer_plan, soft_targets
from .optimizers import Slot, make_optimizer, schedule
from .runtime import load_mxnet, unfused_binding

mx = load_mxnet()

LABEL = "deepwater_label"
SOFT_LABEL = "deepwater_soft_label"  # soft targets (n, classes): class probabilities (mixup, cutmix)
ROW_WEIGHT = "deepwater_row_weight"
CLASS_MASK = "deepwater_class_mask"  # class_gradients(): one-hot rows picking each row's score
GRADIENT_PROBE = "deepwater_gradient_probe"  # class_gradients(): zeros added to a layer, for its gradient
SCRATCH = "__train_scratch"  # suffix of the batch-norm statistics the training BatchNorm op updates itself
MAX_EXECUTORS = 8  # bound executors kept (one per symbol and batch size), least recently used dropped first
_ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid"}
_BN_SUFFIX = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}


# ----------------------------------------------------------------------------- names and devices

def _scalar(array) -> float:
    """The value of a one-element NDArray (waits for MXNet's engine)."""
    return float(array.asscalar())


def mx_name(graph: Graph, key: str) -> str:
    """Canonical '<node>.<param>' -> MXNet array name '<node>_<param>' (batch norm: gamma, beta, moving_*)."""
    node, _, param = key.rpartition(".")
    if graph.node(node).op == "batch_norm":
        param = _BN_SUFFIX[param]
    return f"{node}_{param}"


def mx_context(device: str):
    """'cpu' -> mx.cpu(); 'cpu:i' (a CPU replica) -> mx.cpu(i); 'cuda:i' -> mx.gpu(i)."""
    if device == "cpu":
        return mx.cpu()
    if device.startswith("cpu:"):
        return mx.cpu(int(device.split(":", 1)[1]))
    if device.startswith("cuda:"):
        return mx.gpu(int(device.split(":", 1)[1]))
    raise ValueError(f"the mxnet backend cannot run on device {device!r}; use 'cpu' or 'cuda:<i>'")


# ----------------------------------------------------------------------------- graph -> symbols

@dataclass(frozen=True)
class RunningStats:
    """The names of a batch-norm node's running statistics and of the scratch arrays its training
    BatchNorm operator updates instead."""

    node: str

    @property
    def mean(self) -> str:
        return f"{self.node}_moving_mean"

    @property
    def var(self) -> str:
        return f"{self.node}_moving_var"

    @property
    def scratch_mean(self) -> str:
        return f"{self.node}{SCRATCH}_mean"

    @property
    def scratch_var(self) -> str:
        return f"{self.node}{SCRATCH}_var"


def _conv(node: Node, x):
    a = node.attrs
    k, s, p = a["kernel"], a["stride"], a["pad"]
    return mx.sym.Convolution(x, kernel=(k, k), stride=(s, s), pad=(p, p), num_filter=a["filters"],
                              num_group=a.get("groups", 1), no_bias=not a["bias"], name=node.name)


def _pool(node: Node, x):
    """Max pooling ignores padding (as -inf padding does); average pooling is never padded."""
    a = node.attrs
    k, s, p = a["kernel"], a["stride"], a["pad"]
    return mx.sym.Pooling(x, kernel=(k, k), stride=(s, s), pad=(p, p), pool_type=a["kind"],
                          pooling_convention="valid", name=node.name)


def _global_pool(node: Node, x):
    reduce = mx.sym.mean if node.attrs["kind"] == "avg" else mx.sym.max
    return reduce(x, axis=(2, 3), name=node.name)


def _maxout(node: Node, x):
    pieces = node.attrs["pieces"]
    groups = mx.sym.reshape(x, shape=(0, -1, pieces), name=f"{node.name}__groups")
    return mx.sym.max(groups, axis=2, name=node.name)


def _batch_norm_inference(node: Node, x):
    a = node.attrs
    return mx.sym.BatchNorm(x, eps=a["epsilon"], momentum=a["momentum"], fix_gamma=False,
                            use_global_stats=False, axis=1, name=node.name)


def _batch_norm_training(node: Node, x, updates: dict):
    """BatchNorm on batch statistics, plus symbols for torch's running-statistics update.

    MXNet returns the batch mean and inverse standard deviation 1/sqrt(var + eps); the update is
    running = m * running + (1 - m) * batch, with the variance made unbiased (count / (count - 1)).
    """
    a, stats = node.attrs, RunningStats(node.name)
    m, eps = a["momentum"], a["epsilon"]
    out = mx.sym.BatchNorm(x, moving_mean=mx.sym.var(stats.scratch_mean), moving_var=mx.sym.var(stats.scratch_var),
                           eps=eps, momentum=m, fix_gamma=False, use_global_stats=False, output_mean_var=True,
                           axis=1, name=node.name)
    mean, inv_std = mx.sym.BlockGrad(out[1]), mx.sym.BlockGrad(out[2])
    count = mx.sym.cast(mx.sym.size_array(x), dtype="float32") / node.shape[0]  # values per channel
    variance = mx.sym.reciprocal(mx.sym.square(inv_std)) - eps
    unbiased = mx.sym.broadcast_mul(variance, count / mx.sym.maximum(count - 1.0, 1.0))
    running_mean, running_var = mx.sym.var(stats.mean), mx.sym.var(stats.var)
    updates[stats] = (running_mean * m + mean * (1.0 - m), running_var * m + unbiased * (1.0 - m))
    return out[0]


def _frozen_batch_norm(node: Node, x):
    """Batch norm on its running statistics, which it leaves alone (a frozen layer's, or for gradients)."""
    return mx.sym.BatchNorm(x, eps=node.attrs["epsilon"], fix_gamma=False, use_global_stats=True, axis=1,
                            name=node.name)


def _node_symbol(node: Node, xs: list, updates: dict | None):
    """The MXNet symbol of one node, named after it; `updates` collects batch-norm updates when training."""
    a, x = node.attrs, xs[0]
    if node.op == "conv":
        return _conv(node, x)
    if node.op == "pool":
        return _pool(node, x)
    if node.op == "dense":
        return mx.sym.FullyConnected(x, num_hidden=a["units"], flatten=True, name=node.name)
    if node.op == "global_pool":
        return _global_pool(node, x)
    if node.op == "batch_norm":
        if updates is None:
            return _batch_norm_inference(node, x)
        return _batch_norm_training(node, x, updates)
    if node.op == "act":
        if a["kind"] == "relu6":
            return mx.sym.clip(x, 0.0, 6.0, name=node.name)
        return mx.sym.Activation(x, act_type=_ACTIVATIONS[a["kind"]], name=node.name)
    if node.op == "dropout":
        return mx.sym.Dropout(x, p=a["rate"], name=node.name)
    if node.op == "maxout":
        return _maxout(node, x)
    if node.op == "upsample":
        return mx.sym.UpSampling(x, scale=a["scale"], sample_type="nearest", num_args=1, name=node.name)
    if node.op == "zero_pad":
        widths = (0, 0, 0, 0, a["top"], a["bottom"], a["left"], a["right"])
        return mx.sym.pad(x, mode="constant", pad_width=widths, constant_value=0.0, name=node.name)
    if node.op == "flatten":
        return mx.sym.flatten(x, name=node.name)
    if node.op == "concat":
        return mx.sym.concat(*xs, dim=1, name=node.name)
    if node.op == "add":
        return mx.sym.elemwise_add(xs[0], xs[1], name=node.name)
    raise ValueError(f"the mxnet backend has no layer for op {node.op!r}")


def build_symbols(graph: Graph, training: bool, frozen: frozenset[str] = frozenset()) -> tuple[dict, dict]:
    """Node name -> symbol for the whole graph, and (training only) RunningStats -> new (mean, var) symbols;
    the `frozen` batch-norm layers normalise with their running statistics and keep them."""
    symbols = {graph.input.name: mx.sym.var(graph.input.name)}
    updates: dict = {}
    for node in graph.nodes[1:]:
        inputs = [symbols[i] for i in node.inputs]
        symbols[node.name] = _frozen_batch_norm(node, inputs[0]) if node.name in frozen and \
            node.op == "batch_norm" else _node_symbol(node, inputs, updates if training else None)
    return symbols, updates


def gradient_symbol(graph: Graph, layer: str | None):
    """The symbol class_gradients() runs: sum(output * CLASS_MASK) as a MakeLoss head, then the values of `layer`
    (None: the input) with a zero variable GRADIENT_PROBE added to them, whose gradient is theirs. Batch norm uses
    its running statistics and dropout passes its input, so that the forward pass in training mode (which a
    backward pass needs) computes what inference does."""
    probed = layer or graph.input.name
    symbols = {graph.input.name: mx.sym.var(graph.input.name)}
    if layer is None:
        symbols[probed] = symbols[probed] + mx.sym.var(GRADIENT_PROBE)
    for node in graph.nodes[1:]:
        xs = [symbols[i] for i in node.inputs]
        if node.op == "dropout":
            out = xs[0]
        elif node.op == "batch_norm":
            out = _frozen_batch_norm(node, xs[0])
        else:
            out = _node_symbol(node, xs, None)
        symbols[node.name] = out + mx.sym.var(GRADIENT_PROBE) if node.name == probed else out
    score = mx.sym.sum(symbols[graph.output.name] * mx.sym.var(CLASS_MASK))
    return mx.sym.Group([mx.sym.MakeLoss(score), mx.sym.BlockGrad(symbols[probed])])


# ----------------------------------------------------------------------------- losses

def _rowwise_loss(task: TaskSpec, out, label, soft: bool = False):
    """Each row's loss, as torch's functional losses compute it with reduction='none' (cross entropy with label
    smoothing s: (1 - s) * the class's -log p + s * the mean over classes of -log p; against `soft` targets q,
    (n, classes) probabilities: -sum(((1 - s) * q + s / classes) * log p))."""
    kind, smoothing = task.loss, task.label_smoothing
    if kind == "cross_entropy" and soft:
        target = label * (1.0 - smoothing) + smoothing / task.n_outputs if smoothing else label
        return -mx.sym.sum(target * mx.sym.log_softmax(out, axis=1), axis=1)
    if kind == "cross_entropy":
        log_p = mx.sym.log_softmax(out, axis=1)
        picked = -mx.sym.pick(log_p, label, axis=1)
        return (1.0 - smoothing) * picked - smoothing * mx.sym.mean(log_p, axis=1) if smoothing else picked
    if kind == "reconstruction":  # an autoencoder: the label holds the inputs, flattened as the output is
        return mx.sym.mean(mx.sym.square(out - label), axis=1)
    diff = mx.sym.reshape(out, shape=(-1,)) - label
    if kind == "quadratic":
        return mx.sym.square(diff)
    if kind == "absolute":
        return mx.sym.abs(diff)
    if kind == "huber":
        size = mx.sym.abs(diff)
        return mx.sym.where(size < 1.0, 0.5 * mx.sym.square(diff), size - 0.5)
    raise ValueError(f"the mxnet backend has no loss {kind!r}")


def loss_symbol(task: TaskSpec, out, weighted: bool, soft: bool = False):
    """The task's mean loss of the batch, or sum(l * w) / sum(w) with row weights, as a MakeLoss head; `soft`
    reads soft targets from SOFT_LABEL instead of class codes from LABEL."""
    losses = _rowwise_loss(task, out, mx.sym.var(SOFT_LABEL if soft else LABEL), soft)
    if weighted:
        weights = mx.sym.var(ROW_WEIGHT)
        loss = mx.sym.sum(losses * weights) / mx.sym.maximum(mx.sym.sum(weights), 1e-12)
    else:
        loss = mx.sym.mean(losses)
    return mx.sym.MakeLoss(loss, name="deepwater_loss")


# ----------------------------------------------------------------------------- parameters

def initial_state(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    """Canonical initial weights: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for convolution
    and dense weights and biases; batch norm scale 1, shift 0, running mean 0, running variance 1."""
    rng = np.random.default_rng(seed)
    params = graph.param_shapes()
    state = {}
    for key, shape in graph.state_shapes().items():
        name, _, param = key.rpartition(".")
        if graph.node(name).op == "batch_norm":
            value = np.ones(shape) if param in ("weight", "running_var") else np.zeros(shape)
        else:
            fan_in = math.prod(params[f"{name}.weight"][1:])
            bound = 1.0 / math.sqrt(fan_in) if fan_in else 0.0
            value = rng.uniform(-bound, bound, size=shape)
        state[key] = value.astype(np.float32)
    return state


# ----------------------------------------------------------------------------- executors

def bind_arrays(symbol, ctx, arrays: dict, grads: dict | None, shared=None):
    """Bind `symbol` to the arrays it names in `arrays` (arguments and auxiliary states).

    grads None binds forward-only; otherwise arguments with an array in `grads` get their gradient
    written there and the rest get none. `shared` is an executor to share memory with (or None).
    """
    names = symbol.list_arguments()
    args = {name: arrays[name] for name in names}
    aux = {name: arrays[name] for name in symbol.list_auxiliary_states()}
    if grads is None:
        return symbol.bind(ctx, args, grad_req="null", aux_states=aux, shared_exec=shared)
    grad_req = {name: "write" if name in grads else "null" for name in names}
    used = {name: grads[name] for name in names if name in grads}
    return symbol.bind(ctx, args, args_grad=used, grad_req=grad_req, aux_states=aux, shared_exec=shared)


class ExecutorCache:
    """Bound executors keyed by (..., batch size), kept least recently used first (at most MAX_EXECUTORS).

    `bind(symbol, n, training, shared)` binds a new executor; it shares memory with the newest cached
    executor whose key differs only in the batch size. Binding happens without MKL-DNN fusion.
    """

    def __init__(self, bind: Callable[[object, int, bool, object], object]) -> None:
        self._bind = bind
        self._executors: OrderedDict = OrderedDict()

    def get(self, key: tuple, symbol, n: int, training: bool):
        """The executor for `key` (whose last item is n), bound on first use."""
        if key in self._executors:
            self._executors.move_to_end(key)
            return self._executors[key]
        shared = next((e for k, e in reversed(self._executors.items()) if k[:-1] == key[:-1]), None)
        with unfused_binding():
            executor = self._bind(symbol, n, training, shared)
        self._executors[key] = executor
        while len(self._executors) > MAX_EXECUTORS:
            self._executors.popitem(last=False)
        return executor


# ----------------------------------------------------------------------------- the Net

class SymbolNet(BaseNet):
    """What MXNet's built-in and user nets share (precision float32 only, see the module's notes): a training step and forward passes through executors
    bound per batch size (ExecutorCache), H2O's schedule and the optimiser. A subclass sets `_input`
    (the data variable's name), `_ctx`, `_arrays`, `_executors`, `_gradient_executors`, `_gradient_symbols`,
    `_train_symbols` (by weighted; `_soft_train_symbols` too where it takes soft targets), `_param_names`,
    `_grads`, `optimiser` and `spec`, and gives
    `_inference_symbol(layer)`, `_gradient_symbol(layer)` and `_input_shape()`."""

    precision_limit = ("MXNet 1.9.1's AMP converts symbols to float16 on GPUs only and leaves them float32 for "
                       "bfloat16 on the CPU, so the mxnet backend trains in float32; use backend='torch' or "
                       "'tensorflow' for mixed precision")

    @abstractmethod
    def _inference_symbol(self, layer: str | None):
        """The flattened output (layer None: logits or values) or one layer's flattened activations."""

    @abstractmethod
    def _gradient_symbol(self, layer: str | None):
        """The symbol class_gradients() runs: the class scores as a loss head, `layer` (None: the input) probed."""

    @abstractmethod
    def _input_shape(self) -> tuple[int, ...]:
        """The shape of one input row."""

    def _bind_gradients(self, symbol, n: int, training: bool, shared):
        """Bind a gradient symbol for n rows: the gradient goes to the probe alone."""
        input_shape = (n,) + self._input_shape()
        arg_shapes, _, _ = symbol.infer_shape(**{self._input: input_shape})
        probe = dict(zip(symbol.list_arguments(), arg_shapes))[GRADIENT_PROBE]
        inputs = {self._input: mx.nd.zeros(input_shape, ctx=self._ctx),
                  CLASS_MASK: mx.nd.zeros((n, self.task.n_outputs), ctx=self._ctx),
                  GRADIENT_PROBE: mx.nd.zeros(probe, ctx=self._ctx)}
        grads = {GRADIENT_PROBE: mx.nd.zeros(probe, ctx=self._ctx)}
        return bind_arrays(symbol, self._ctx, {**self._arrays, **inputs}, grads, shared)

    def _class_gradients(self, x: np.ndarray, layer: str | None, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One forward and one backward pass of the gradient symbol through an executor bound per batch size."""
        n = len(x)
        if layer not in self._gradient_symbols:
            self._gradient_symbols[layer] = self._gradient_symbol(layer)
        executor = self._gradient_executors.get((layer, n), self._gradient_symbols[layer], n, True)
        executor.arg_dict[self._input][:] = np.asarray(x, dtype=np.float32)
        executor.arg_dict[CLASS_MASK][:] = np.eye(self.task.n_outputs, dtype=np.float32)[target]
        executor.forward(is_train=True)
        executor.backward()
        return (executor.outputs[1].asnumpy().astype(np.float32, copy=False),
                executor.grad_dict[GRADIENT_PROBE].asnumpy().astype(np.float32, copy=False))

    def _after_training_forward(self, outputs: list) -> None:
        """Read what the training symbol computes beside the loss (nothing, unless a subclass says)."""

    def _forward(self, x: np.ndarray, layer: str | None) -> np.ndarray:
        """Run the inference symbol of `layer` (None: the output) on a batch, as float32 numpy."""
        executor = self._executors.get(("infer", layer, len(x)), self._inference_symbol(layer), len(x), False)
        executor.arg_dict[self._input][:] = np.asarray(x, dtype=np.float32)
        executor.forward(is_train=False)
        return executor.outputs[0].asnumpy().astype(np.float32, copy=False)

    def gradients(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None):
        """Forward and backward on a batch, leaving the gradients in the net's gradient arrays; returns the
        batch's mean loss as an MXNet array (not waited for)."""
        n, weighted, soft = len(x), weights is not None, soft_targets(self.task, y)
        symbols = self._soft_train_symbols if soft else self._train_symbols
        executor = self._executors.get(("train", weighted, soft, n), symbols[weighted], n, True)
        executor.arg_dict[self._input][:] = np.asarray(x, dtype=np.float32)
        executor.arg_dict[SOFT_LABEL if soft else LABEL][:] = np.asarray(y, dtype=np.float32)
        if weighted:
            executor.arg_dict[ROW_WEIGHT][:] = np.asarray(weights, dtype=np.float32)
        executor.forward(is_train=True)
        executor.backward()
        self._after_training_forward(executor.outputs)
        return executor.outputs[0]

    def gradient_arrays(self) -> list:
        """The gradient array of each trainable parameter, in parameter order."""
        return [self._grads[name] for name in self._param_names]

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> LazyLoss:
        loss = self.gradients(x, y, weights)
        self.optimiser.step(*schedule(self.spec, self.samples))
        # a copy queued on MXNet's engine (the next forward overwrites the output), read when the trainer scores
        return LazyLoss(loss.copy(), _scalar)

    def _scores(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, None)

    def _activations(self, x: np.ndarray, layer: str) -> np.ndarray:
        return self._forward(x, layer)

    def parameter_count(self) -> int:
        """Trainable values: every argument of the symbol but the input."""
        return int(sum(self._grads[name].size for name in self._param_names))


class MXNetNet(SymbolNet):
    """A built-in network on one device, with its optimiser: the Net for MXNet."""

    takes_soft_targets = True  # its soft training symbols read SOFT_LABEL

    def __init__(self, graph: Graph, task: TaskSpec, optimizer: OptimizerSpec, device: str, seed: int) -> None:
        super().__init__(task, device, "this network")
        mx.random.seed(seed)
        self.graph, self.spec = graph, optimizer
        self._ctx = mx_context(device)
        self._input = graph.input.name
        self._names = {key: mx_name(graph, key) for key in graph.state_shapes()}
        self._arrays = {self._names[k]: mx.nd.zeros(shape, ctx=self._ctx) for k, shape in graph.state_shapes().items()}
        self._write_state(initial_state(graph, seed))
        params = list(graph.param_shapes())
        self._param_names = [self._names[k] for k in params]
        self._grads = {n: mx.nd.zeros(self._arrays[n].shape, ctx=self._ctx) for n in self._param_names}
        self._inference, _ = build_symbols(graph, training=False)
        self._build_training(frozenset())
        self._inference_symbols: dict = {}
        self._gradient_executors = ExecutorCache(self._bind_gradients)
        self._gradient_symbols: dict = {}
        penalised = set(graph.penalised_params())  # conv and dense weights
        self.plan = layer_plan(graph, optimizer)
        slots = [Slot(self._arrays[self._names[k]], self._grads[self._names[k]], k in penalised,
                      self.plan.scale(k.rsplit(".", 1)[0])) for k in params]
        self.optimiser = make_optimizer(slots, optimizer)
        self._frozen: frozenset[str] = frozenset()  # the layers kept fixed now

    def _build_training(self, frozen: frozenset[str]) -> None:
        """The training symbols (their frozen batch norms on running statistics) and a fresh executor cache."""
        training, self._updates = build_symbols(self.graph, training=True, frozen=frozen)
        self._scratch = self._scratch_arrays()
        out = training[self.graph.output.name]
        self._train_symbols = {weighted: self._train_symbol(out, weighted, False) for weighted in (False, True)}
        self._soft_train_symbols = {weighted: self._train_symbol(out, weighted, True) for weighted in (False, True)} \
            if self.task.is_classification else {}
        self._executors = ExecutorCache(self._bind)

    def _follow_freeze(self) -> None:
        """Freeze the plan's layers, or train them again once unfreeze_after_epochs has passed."""
        frozen = self.plan.frozen_at(self.samples)
        if frozen != self._frozen:
            norms_change = any(self.graph.node(layer).op == "batch_norm" for layer in frozen ^ self._frozen)
            self._frozen = frozen
            self.optimiser.freeze([k.rsplit(".", 1)[0] in frozen for k in self.graph.param_shapes()])
            if norms_change:
                self._build_training(frozen)

    def _step(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> LazyLoss:
        self._follow_freeze()
        return super()._step(x, y, weights)

    # --- symbols and executors ------------------------------------------------------------
    def _train_symbol(self, out, weighted: bool, soft: bool):
        """Loss head first, then each batch-norm node's new running mean and variance."""
        heads = [loss_symbol(self.task, out, weighted, soft)]
        for mean, var in self._updates.values():
            heads += [mx.sym.BlockGrad(mean), mx.sym.BlockGrad(var)]
        return mx.sym.Group(heads)

    def _scratch_arrays(self) -> dict:
        """Arrays the training BatchNorm ops write their own (unused) running statistics into."""
        scratch = {}
        for stats in self._updates:
            shape = self._arrays[stats.mean].shape
            scratch[stats.scratch_mean] = mx.nd.zeros(shape, ctx=self._ctx)
            scratch[stats.scratch_var] = mx.nd.ones(shape, ctx=self._ctx)
        return scratch

    def _bind(self, symbol, n: int, training: bool, shared):
        """Bind `symbol` for n rows to this net's shared arrays, with fresh input arrays."""
        inputs = {self.graph.input.name: mx.nd.zeros((n,) + tuple(self.graph.input.shape), ctx=self._ctx),
                  LABEL: mx.nd.zeros((n, self.task.n_outputs) if self.task.is_autoencoder else (n,), ctx=self._ctx),
                  SOFT_LABEL: mx.nd.zeros((n, self.task.n_outputs), ctx=self._ctx),
                  ROW_WEIGHT: mx.nd.zeros((n,), ctx=self._ctx)}
        arrays = {**self._arrays, **self._scratch, **inputs}
        return bind_arrays(symbol, self._ctx, arrays, self._grads if training else None, shared)

    def _gradient_symbol(self, layer: str | None):
        return gradient_symbol(self.graph, layer)

    def _input_shape(self) -> tuple[int, ...]:
        return tuple(self.graph.input.shape)

    def _inference_symbol(self, layer: str | None):
        """The output (layer None: logits or values) or one layer's flattened activations."""
        if layer not in self._inference_symbols:
            if layer is None:
                symbol = self._inference[self.graph.output.name]
            else:
                symbol = mx.sym.flatten(self._inference[layer])
            self._inference_symbols[layer] = symbol
        return self._inference_symbols[layer]

    def _after_training_forward(self, outputs: list) -> None:
        """Copy the training symbol's new batch-norm running statistics into the running arrays."""
        for i, stats in enumerate(self._updates):
            outputs[1 + 2 * i].copyto(self._arrays[stats.mean])
            outputs[2 + 2 * i].copyto(self._arrays[stats.var])

    # --- BaseNet --------------------------------------------------------------------------
    def layers(self) -> list[str]:
        return self.graph.layer_names()

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        return self.graph.state_shapes()

    def _read_state(self) -> dict[str, np.ndarray]:
        return {key: self._arrays[name].asnumpy().astype(np.float32, copy=True) for key, name in self._names.items()}

    def _write_state(self, state: dict[str, np.ndarray]) -> None:
        for key, name in self._names.items():
            # an NDArray-to-NDArray copy also handles arrays that MKL-DNN keeps in its own layout
            mx.nd.array(np.asarray(state[key], dtype=np.float32), ctx=self._ctx).copyto(self._arrays[name])

    # the ema average as NDArrays on the net's context, updated on MXNet's engine without waiting
    def _new_average(self) -> dict:
        return {key: self._arrays[name].copy() for key, name in self._names.items()}

    def _update_average(self) -> None:
        keep = 1.0 - self.ema
        for key, name in self._names.items():
            mean = self._average[key]
            mean += (self._arrays[name] - mean) * keep

    def _average_arrays(self) -> dict[str, np.ndarray]:
        return {key: mean.asnumpy().astype(np.float32, copy=True) for key, mean in self._average.items()}

    def _load_average(self) -> None:
        for key, name in self._names.items():
            self._average[key].copyto(self._arrays[name])
