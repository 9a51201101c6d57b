"""Which precision fits this machine: bfloat16 only where the hardware computes it natively.

On an x86 CPU, TensorFlow's oneDNN kernels run bfloat16 natively only with the AVX-512 BF16 or
AMX instructions; elsewhere they convert to float32 and back around every op, which is slower
than float32 alone. Measured on 2-core machines of this project (one training step):

- without `avx512_bf16` or AMX: PixelCNN (batch 64) 0.19 s in float32, 0.56 s in mixed_bfloat16 (2.9x slower);
- with `avx512_bf16`: DCGAN (InfoGAN code, weight average, batch 128) 0.20 s in float32, 0.11 s in
  mixed_bfloat16 (1.8x faster).

GPUs compute bfloat16 natively from compute capability 8.0 (Ampere) on.
"""

import functools
import warnings

NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# The CPU flags that matter to TensorFlow's speed here, printed beside benchmark tables.
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
SLOW_BFLOAT16 = (
    "this CPU has neither avx512_bf16 nor AMX, so TensorFlow emulates bfloat16 through "
    "float32: a PixelCNN training step took 2.9x as long as in float32 on such a CPU "
    "(0.56 s against 0.19 s at batch 64)"
)


@functools.lru_cache(maxsize=None)
def cpu_flags():
    """The CPU's feature flags from /proc/cpuinfo (an empty set where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def speed_flags():
    """'avx512f avx512_bf16 ...': which of SPEED_FLAGS this CPU has, or 'none of ...'."""
    present = [flag for flag in SPEED_FLAGS if flag in cpu_flags()]
    return " ".join(present) if present else f"none of {' '.join(SPEED_FLAGS)}"


def _gpu_compute_capabilities():
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capabilities.append(tuple(details.get("compute_capability") or (0, 0)))
    return capabilities


def native_bfloat16():
    """(True or False, why): whether training computes bfloat16 natively on this machine.

    A GPU decides when there is one (compute capability 8.0 or newer), else the CPU's flags.
    """
    capabilities = _gpu_compute_capabilities()
    if capabilities:
        newest = max(capabilities)
        version = ".".join(map(str, newest))
        if newest >= (8, 0):
            return True, f"the GPU has compute capability {version} (bfloat16 from 8.0)"
        return (
            False,
            f"the GPU has compute capability {version}, below 8.0, where bfloat16 is emulated",
        )
    native = [flag for flag in NATIVE_CPU_FLAGS if flag in cpu_flags()]
    if native:
        return True, f"the CPU has {' and '.join(native)}"
    return False, SLOW_BFLOAT16


PRECISION_CHOICES = ("auto", "float32", "bfloat16", "float16")


def resolve(choice, float32_reason=None):
    """(dtype policy name or None for float32, one line saying why) for `--mixed-precision CHOICE`.

    Args:
        choice: None (float32), "auto" (bfloat16 where native, else float32), "float32",
            "bfloat16" or "float16" (as asked).
        float32_reason: why the model should stay in float32 (its class's `float32_reason`), or
            None. Given one, "auto" keeps float32 and an asked-for mixed policy names it.
    """
    if choice is None:
        return None, "precision: float32 (no --mixed-precision)"
    if choice == "float32":
        return None, "precision: float32 (asked for)"
    if choice == "auto":
        native, why = native_bfloat16()
        if native and float32_reason:
            return None, f"precision: float32 (auto: {float32_reason})"
        if native:
            return "mixed_bfloat16", f"precision: mixed_bfloat16 (auto: {why})"
        return None, f"precision: float32 (auto: {why})"
    if choice in ("bfloat16", "float16"):
        caveat = f"; {float32_reason}" if float32_reason else ""
        return f"mixed_{choice}", f"precision: mixed_{choice} (asked for{caveat})"
    raise ValueError(f"--mixed-precision takes {', '.join(PRECISION_CHOICES)}, got {choice!r}.")


@functools.lru_cache(maxsize=None)
def warn_if_bfloat16_is_slow():
    """Warns once per process that bfloat16 will be slower here, when it is not native."""
    native, why = native_bfloat16()
    if not native:
        warnings.warn(
            f"mixed_bfloat16 will train slower than float32 here: {why}. Use float32, or "
            "--mixed-precision auto.",
            RuntimeWarning,
            stacklevel=3,
        )


def float32_twin(model):
    """The model itself if it computes in float32, else a float32 copy with the same weights.

    TFLite has no bfloat16 kernels, so mixed-precision models export, sample and score as float32.
    """
    import keras

    if model.dtype_policy.compute_dtype == "float32":
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")
    try:
        config = {**model.get_config(), "dtype": "float32"}
        twin = type(model).from_config(config)
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin
