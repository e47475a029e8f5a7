# Copyright (c) bevt contributors. All rights reserved.
"""The backward of a graph of fake CUDA tensors, without the autograd engine.

The engine runs the nodes of CUDA tensors on a device thread that needs a
GPU (on fake CUDA tensors without one: ``hasPrimaryContext expects a valid
device index``), but each node's formula runs on fake tensors as any
operator does. :func:`backward_by_hand` calls the nodes itself, each once
all its gradients are in, so that a dispatch mode (e.g.
:func:`~.op_count.count_ops`) sees the operators of the backward as the
engine would run them, in another order.
"""
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence


def _graph_dependencies(roots: Sequence[Any]) -> Counter:
    """Uses of each node reachable from ``roots`` (edges into it)."""
    deps: Counter = Counter()
    seen = set(roots)
    stack = list(roots)
    while stack:
        node = stack.pop()
        for child, _ in node.next_functions:
            if child is None:
                continue
            deps[child] += 1
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return deps


def _obeys_layout(grad: Any, leaf: Any) -> bool:
    """Whether ``AccumulateGrad`` keeps ``grad`` as it is for ``leaf``
    (autograd's ``obeys_layout_contract``): the leaf's strides, except in
    dimensions of size 1 (where a stride of 0 does not count)."""
    for size, stride, own in zip(grad.shape, grad.stride(), leaf.stride()):
        if size == 1:
            if stride == 0:
                return False
        elif stride != own:
            return False
    return True


def _call_node(node: Any, grads: List[Optional[Any]]) -> List[Optional[Any]]:
    """Run ``node`` on the gradients of its outputs; return the gradients
    of its inputs in the order of ``node.next_functions``."""
    import torch

    if not isinstance(node, torch.autograd.function.BackwardCFunction):
        out = node(*grads)  # a C++ node (None: an undefined gradient)
        return list(out) if isinstance(out, tuple) else [out]
    # a custom Function: the engine's PyNode materializes undefined
    # gradients as zeros (the default, which bevt's Functions keep; the
    # flag cannot be read from Python) and keeps the returned gradients of
    # its tensor inputs that need one; those are the inputs with an edge
    # (next_functions lists every tensor input, None for one without a
    # gradient, and no non-tensor input)
    grads = [
        torch.zeros(meta.shape, dtype=meta.dtype, device=meta.device)
        if grad is None else grad
        for grad, meta in zip(grads, node._input_metadata)
    ]
    out = node.apply(*grads)
    out = list(out) if isinstance(out, tuple) else [out]
    wanted = iter(g for g, need in zip(out, node.needs_input_grad) if need)
    return [
        None if child is None else next(wanted)
        for child, _ in node.next_functions
    ]


def backward_by_hand(outputs: Sequence[Any],
                     grads: Sequence[Any]) -> Dict[Any, Any]:
    """``torch.autograd.backward(outputs, grads)``, the nodes called here.

    As the engine: grad mode off and autocast off (the backward of a
    training step runs outside the forward's autocast); a node runs once
    the gradients of all its uses are summed in (one ``add`` each); a
    gradient whose shape or dtype differs from its input's is summed to
    the shape and cast (the engine's ``validate_outputs``); the leaves'
    ``AccumulateGrad`` take the gradient as a first backward after
    ``zero_grad(set_to_none=True)`` does: as it is, or copied into the
    leaf's strides if it has others (one ``copy_``), but returned instead
    of stored in ``.grad``. Not modelled: tensor hooks (bevt registers
    none) and freeing the saved tensors as the backward goes.

    Args:
        outputs (Sequence[Tensor]): Tensors with a ``grad_fn``.
        grads (Sequence[Tensor]): Their gradients (e.g. ``empty_like``).

    Returns:
        dict: The gradient of each leaf reached (leaf tensor -> gradient).
    """
    import torch

    roots = [(t.grad_fn, t.output_nr, g) for t, g in zip(outputs, grads)
             if t.grad_fn is not None]
    if not roots:
        raise ValueError('backward_by_hand: no output has a grad_fn')
    deps = _graph_dependencies(list({id(n): n for n, _, _ in roots}.values()))
    buffers: Dict[Any, List[Optional[Any]]] = {}
    leaves: Dict[Any, Any] = {}

    def receive(node: Any, slot: int, grad: Any) -> None:
        buffer = buffers.setdefault(node, [None] * len(node._input_metadata))
        meta = node._input_metadata[slot]
        if list(grad.shape) != list(meta.shape):
            grad = grad.sum_to_size(meta.shape)
        if grad.dtype != meta.dtype:
            grad = grad.to(meta.dtype)
        buffer[slot] = grad if buffer[slot] is None else buffer[slot] + grad

    for node, slot, grad in roots:
        receive(node, slot, grad)
    ready = [node for node in buffers if deps[node] == 0]
    autocast = {d: torch.is_autocast_enabled(d) for d in ('cpu', 'cuda')}
    try:
        for device in autocast:
            torch.set_autocast_enabled(device, False)
        with torch.no_grad():
            while ready:
                node = ready.pop()
                inputs = buffers.pop(node)
                if type(node).__name__ == 'AccumulateGrad':
                    leaf, grad = node.variable, inputs[0]
                    if grad is not None and not _obeys_layout(grad, leaf):
                        grad = torch.empty_like(leaf).copy_(grad)
                    leaves[leaf] = grad
                    continue
                outs = _call_node(node, inputs)
                for out, (child, slot) in zip(outs, node.next_functions):
                    if child is None:
                        continue
                    if out is not None:
                        receive(child, slot, out)
                    else:
                        buffers.setdefault(child,
                                           [None] * len(child._input_metadata))
                    deps[child] -= 1
                    if deps[child] == 0:
                        ready.append(child)
    finally:
        for device, enabled in autocast.items():
            torch.set_autocast_enabled(device, enabled)
    return leaves
