"""Fold a direction's merged deltas or factors (modmt.runtime.lora_merge) into a PyTorch base model's weights."""
from modmt.runtime.errors import ModmtError


def fold_deltas(model, deltas: dict) -> None:
    """W += dW in place for the named weights; every other tensor stays the base's, bit for bit."""
    fold_factors(model, {name: (delta, None) for name, delta in deltas.items()})


def fold_factors(model, factors: dict) -> None:
    """W += B @ A in place for {name: (B, A)} (A None: B is the delta itself), one product at a time:
    the deltas of every matrix at once would hold another copy of the model's adapted weights."""
    import torch

    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, (b, a) in factors.items():
            delta = b if a is None else b @ a
            if name not in params:
                raise ModmtError(f"the base model has no weight {name}: the adapters were trained on another "
                                 "architecture")
            param = params[name]
            delta = torch.as_tensor(delta)
            if param.shape != delta.shape:
                raise ModmtError(f"{name}: adapter delta {tuple(delta.shape)} does not fit the base weight "
                                 f"{tuple(param.shape)}; the adapters belong to another base model")
            param.copy_((param.float() + delta.to(param.device)).to(param.dtype))
