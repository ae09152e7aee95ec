"""CUDA graphs for the IMP training step (`train.cuda_graphs = true`): one launch per step.

On a GPU one LeNet step is microseconds of arithmetic under dozens of kernel launches and the
Python that issues them. `GraphedStep` captures the whole masked step (forward, loss,
backward, weight decay, gradient masking, the optimizer update) as one CUDA graph and replays
it, following torch's "whole-network capture" recipe (docs: notes/cuda.html#cuda-graphs):

* Static inputs. Each batch is copied into fixed buffers before a replay. The masks are
  MaskedParams' tensors, which never move; the parameters, their gradients (allocated by the
  captured backward in the graph's pool) and the optimizer state stay where the capture saw
  them. The learning rate is a 0-dim device tensor the fused Adam/SGD kernels read; when the
  schedule moves it is written in place, so a cosine schedule never re-captures.
* The optimizer inside the graph. Adam runs with `capturable=True` (its step count lives on the
  device); SGD's fused kernel keeps no host state. Both are the fused kernels the eager step
  uses (engine.optim.build_optimizer). Between steps the param groups hold the eager values
  (float lr, capturable as built), so checkpoints keep the eager format and resume either way.
* Warm-up on a side stream. The first WARMUP_STEPS steps of a round run eagerly on the stream
  that then captures (cuBLAS handles, autograd and optimizer state are made there, outside the
  capture). They are real steps: no step is run twice or skipped. The next step is captured,
  then replayed to do it; every later step is a replay.
* Outside the graph, between replays and on the same stream: the data order, augmentation
  (its CPU generator's draws feed the batch that is copied in), evaluation, checkpoints and
  the capture of θk. A batch of another shape (the short last batch of an epoch under
  train.last_batch = "keep") runs the same body eagerly on the graph's gradient tensors.

The body is one function, eager or captured: on a CPU `GraphedStep` (capture off) runs it
eagerly, and tests compare that with the eager step (engine.training.MaskedStep) bit for bit.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator

import torch

from engine.config import ConfigError, TrainConfig
from engine.optim import add_weight_decay

__all__ = ["WARMUP_STEPS", "GraphedStep", "check_device"]

# Eager steps before the capture: torch's recipe and make_graphed_callables use 3.
WARMUP_STEPS = 3


def check_device(config: TrainConfig, device: torch.device) -> None:
    """Refuse train.cuda_graphs where the run trains on no GPU (device = auto on a CPU box)."""
    device = torch.device(device)
    if config.cuda_graphs and device.type != "cuda":
        raise ConfigError("device", "train.cuda_graphs", True,
                          f"CUDA graphs need a CUDA device and this run trains on {device.type}; "
                          "set train.cuda_graphs = false or run it on a GPU")


class GraphedStep:
    """`step(x, y) -> loss`: one masked training step, replayed from a CUDA graph.

    Called as the eager step is: `loss_of(x, y)` the forward and loss (engine.training's
    training_forward then cross-entropy), `optimizer` the round's (fused) optimizer, `params`
    the trainable parameters (weight decay), `grad_weights` / `grad_masks` MaskedParams'
    weights and masks. The loop keeps writing the learning rate into the param groups as
    floats; the step copies it into its device tensor when it changes. The returned loss is a
    tensor the next step overwrites: add it up before the next call. It may be made before a
    checkpoint is loaded into the optimizer (nothing is captured before the first steps).
    """

    def __init__(self, loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
                 params: list[torch.Tensor], weight_decay: float, grad_weights: list[torch.Tensor] | None = None,
                 grad_masks: list[torch.Tensor] | None = None, capture: bool | None = None):
        self.loss_of, self.optimizer, self.params, self.weight_decay = loss_of, optimizer, params, weight_decay
        self.grad_weights, self.grad_masks = grad_weights or [], grad_masks or []
        self.device = params[0].device
        self.capture = self.device.type == "cuda" if capture is None else capture
        groups = optimizer.param_groups
        if self.capture and isinstance(optimizer, torch.optim.SGD) and not all(g.get("fused") for g in groups):
            # unfused SGD reads a tensor learning rate on the host (a sync, not capturable)
            raise RuntimeError("train.cuda_graphs needs torch's fused SGD kernel, "
                               "which this build lacks for these parameters")
        # float32 is what the fused CUDA kernels read; on a CPU they read a float64 exactly as the float lr
        self.lr_value = float(groups[0]["lr"])
        self.lr = torch.full((), self.lr_value, dtype=torch.float32 if self.device.type == "cuda" else torch.float64,
                             device=self.device)
        self.x: torch.Tensor | None = None
        self.y: torch.Tensor | None = None
        self.loss: torch.Tensor | None = None
        self.graph: torch.cuda.CUDAGraph | None = None
        self.warmed = 0
        self.replays = 0
        self.eager_steps = 0
        self.stream = torch.cuda.Stream(self.device) if self.capture else None

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        lr = float(self.optimizer.param_groups[0]["lr"])
        if lr != self.lr_value:  # only when the schedule moves: one in-place write, no re-capture
            self.lr.fill_(lr)
            self.lr_value = lr
        if self.x is None or (self.graph is None and len(x) > len(self.x)):
            # sized by the largest batch seen before the capture (a round resumed at an epoch's
            # short last batch must still capture full ones)
            self.x, self.y = torch.empty_like(x), torch.empty_like(y)
        if x.shape != self.x.shape or y.shape != self.y.shape or x.dtype != self.x.dtype:
            return self._eager(x, y)  # another batch shape: the same body, not the captured graph
        self.x.copy_(x)
        self.y.copy_(y)
        if not self.capture:
            return self._eager(self.x, self.y)
        if self.graph is not None:
            self.graph.replay()
            self.replays += 1
            return self.loss
        if self.warmed < WARMUP_STEPS:
            self.warmed += 1
            return self._warmup()
        self._capture()
        self.graph.replay()
        self.replays += 1
        return self.loss

    def _body(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The step itself, in engine.training.MaskedStep's order; the gradients are None or
        the graph's on entry, and the param groups hold the graph's settings (_settings)."""
        loss = self.loss_of(x, y)
        loss.backward()
        add_weight_decay(self.params, self.weight_decay)
        if self.grad_weights:  # MaskedParams.mask_gradients: pruned positions, decay included, to 0
            torch._foreach_mul_([w.grad for w in self.grad_weights], self.grad_masks)
        self.optimizer.step()  # pruned positions have gradient 0 and so do not move (MaskedParams)
        return loss.detach()

    def _eager(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # Once captured, the graph's gradient tensors are zeroed in place (the graph keeps using
        # them); before, they are dropped, as the eager loop does.
        self.optimizer.zero_grad(set_to_none=self.graph is None)
        self.eager_steps += 1
        with self._settings():
            return self._body(x, y)

    def _warmup(self) -> torch.Tensor:
        _steps_on_device(self.optimizer, self.device)
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            loss = self._eager(self.x, self.y)
        current.wait_stream(self.stream)
        loss.record_stream(current)  # made on the side stream, added up on this one
        return loss

    def _capture(self) -> None:
        _steps_on_device(self.optimizer, self.device)
        self.optimizer.zero_grad(set_to_none=True)  # the captured backward allocates them in the graph's pool
        graph = torch.cuda.CUDAGraph()
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        with torch.cuda.device(self.device), self._settings():
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self.loss = self._body(self.x, self.y)
        current.wait_stream(self.stream)
        self.graph = graph

    @contextlib.contextmanager
    def _settings(self) -> Iterator[None]:
        """The param groups as the graph needs them for one body: the device lr tensor, and
        capturable Adam when capturing; the eager values are put back after."""
        saved = [(g["lr"], g.get("capturable")) for g in self.optimizer.param_groups]
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr
            if self.capture and "capturable" in g:
                g["capturable"] = True
        try:
            with warnings.catch_warnings():
                # the warm-up steps run a capturable optimizer outside a capture, on purpose
                warnings.filterwarnings("ignore", message=".*capturable=True.*")
                yield
        finally:
            for g, (lr, capturable) in zip(self.optimizer.param_groups, saved):
                g["lr"] = lr
                if capturable is not None:
                    g["capturable"] = capturable


def _steps_on_device(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Adam's step counts on the device (capturable Adam needs them there; an unfused Adam
    loading a checkpoint keeps them on the host)."""
    for state in optimizer.state.values():
        step = state.get("step")
        if isinstance(step, torch.Tensor) and step.device != device:
            state["step"] = step.to(device)
