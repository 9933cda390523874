"""A base model with LoRA_in and LoRA_out both active, each scaled per decoder layer by (w_in, w_out).

h = Wx + w_in * LoRA_in(x) + w_out * LoRA_out(x) (eq. 5 of the paper), built on PEFT: both adapters
are loaded into one PeftModel and activated together, and a pre-forward hook on every decoder layer
scales the LoRA modules inside it by that layer's weights. Weight learning trains those weights;
the export tests use the same forward as the reference for a merged direction.
"""
import re

from modmt.runtime.errors import ModmtError

IN, OUT = "lora_in", "lora_out"


def load_pair(base_model, in_dir, out_dir):
    """A PeftModel over `base_model` with both adapters active and frozen."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base_model, str(in_dir), adapter_name=IN)
    model.load_adapter(str(out_dir), adapter_name=OUT)
    model.base_model.set_adapter([IN, OUT])
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def decoder_layers(model) -> list:
    """The decoder layers in order (modules named ...layers.<i>)."""
    layers = {}
    for name, module in model.named_modules():
        match = re.search(r"\.layers\.(\d+)$", name)
        if match:
            layers[int(match.group(1))] = module
    if not layers:
        raise ModmtError("found no decoder layers (modules named '...layers.N') in the base model")
    return [layers[i] for i in sorted(layers)]


def attach_layer_weights(model, weights_of_layer) -> list:
    """Scale each layer's LoRA modules by weights_of_layer(i) -> (w_in, w_out) on every forward.

    The weights may be tensors that require grad (weight learning) or plain floats. Returns the
    hook handles; removing them restores the adapters' own scalings.
    """
    from peft.tuners.lora import LoraLayer

    layers = decoder_layers(model)
    in_layers = {id(m) for layer in layers for m in layer.modules() if isinstance(m, LoraLayer)}
    outside = [n for n, m in model.named_modules() if isinstance(m, LoraLayer) and id(m) not in in_layers]
    if outside:
        raise ModmtError(f"LoRA modules outside the decoder layers ({outside[0]}, ...) have no per-layer "
                         "weight; train the adapters without them (e.g. --targets all-linear)")
    handles = []
    for index, layer in enumerate(layers):
        modules = [m for m in layer.modules() if isinstance(m, LoraLayer)]
        base = [(m.scaling[IN], m.scaling[OUT]) for m in modules]

        def hook(_module, _args, index=index, modules=modules, base=base):
            w_in, w_out = weights_of_layer(index)
            for m, (s_in, s_out) in zip(modules, base):
                m.scaling[IN], m.scaling[OUT] = s_in * w_in, s_out * w_out

        handles.append(layer.register_forward_pre_hook(hook))
    return handles
