"""The int8 instructions of this CPU, and the one line to print when an export's recipe does not suit them.

ONNX Runtime chooses its int8 kernels by instruction set: on x86, vpdpbusd with AVX512-VNNI or
AVX-VNNI, vpmaddubsw without (it adds pairs of u8 x s8 products in 16 bits, with saturation); on
ARM64, dot-product instructions (asimddp, i8mm), whose 32-bit sums cannot saturate.
"""
import platform

X86_FLAGS = ("avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8")
ARM_FLAGS = ("asimddp", "i8mm")


def int8_features(cpuinfo: str | None = None) -> set[str]:
    """The int8-relevant flags of this CPU (from /proc/cpuinfo; empty where it cannot be read)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            return set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return {flag for flag in value.split() if flag in X86_FLAGS + ARM_FLAGS}
    return set()


def cpu_description(cpuinfo: str | None = None) -> str:
    """This CPU as a speed figure names it: model name, x86 family/model numbers, int8 flags."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    flags = [flag for flag in X86_FLAGS + ARM_FLAGS if flag in int8_features(cpuinfo)]
    return f"{name}, int8 flags: {' '.join(flags) or 'none'}"


def _x86(features: set[str]) -> bool:
    if features & set(ARM_FLAGS):
        return False
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686") or "avx2" in features


def x86_without_vnni(features: set[str]) -> bool:
    """Whether u8 x s8 products are added in 16 bits with saturation here (x86 without VNNI)."""
    return _x86(features) and not features & {"avx512_vnni", "avx_vnni"}


def recipe_notice(recipe: dict | None, features: set[str] | None = None) -> str | None:
    """One line when a quantization recipe recorded in a manifest does not hold on this CPU, else None."""
    if not recipe:
        return None
    features = int8_features() if features is None else features
    flags = " ".join(sorted(features)) or "no int8 flags"
    if not recipe.get("dynamic"):
        if recipe.get("bits") == 8 and x86_without_vnni(features):
            # docs/results.md, "Precisions per CPU": MatMulNBits' 8-bit kernel without VNNI, at 40 rows.
            return (f"note: without VNNI (this CPU: {flags}) weight-only int8 decodes batches at about 0.6x fp32's "
                    "speed (batch 8, beam 5); export --quantize w8a8 for speed at batch on this CPU")
        # With VNNI the 8-bit kernel is not slower than fp32 per decoding step (1.03-1.32x at 40 rows in blocks
        # of 32, 1.40-1.80x in blocks of 128, on an AVX512-VNNI Xeon: docs/results.md, "Precisions per CPU").
        return None
    if recipe.get("activations") is None and x86_without_vnni(features):  # w8a8 from before per-row 7-bit activations
        return ("warning: this w8a8 export quantizes activations to 8 bits per tensor, and on a CPU without VNNI "
                f"(this one: {flags}) its int8 products saturate (logits off by up to a third); export it again "
                "with this version's `modmt-export --quantize w8a8`")
    return None
