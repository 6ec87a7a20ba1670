"""The one place an onnxruntime session is created (explicit providers, fixed thread policy)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # must precede the onnxruntime import

import onnxruntime as ort

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def has_vnni() -> bool:
    """Whether this CPU has AVX-512 VNNI (numpy's own CPUID probe, so an emulated CPU reports
    what it emulates): onnxruntime's U8S8 int8 kernels are exact there."""
    try:
        umath = importlib.import_module("numpy._core._multiarray_umath")
    except ImportError:  # pragma: no cover - numpy < 2
        return False
    features: dict[str, bool] = getattr(umath, "__cpu_features__", {})
    return bool(features.get("AVX512VNNI"))


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, then CPU (always present)."""
    available = ort.get_available_providers()
    return [CUDA, CPU] if CUDA in available else [CPU]


def create_session(
    path: Path | str,
    providers: Sequence[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    """Load the ONNX model at ``path`` into an inference session.

    ``providers`` defaults to :func:`default_providers`; each one given must be available in
    the installed onnxruntime. ``intra_op_threads`` None/0 means onnxruntime's default (one per
    physical core); keep ``intra_op_threads x concurrent callers <= cores``. ``run()`` on the
    returned session is thread-safe, so create it once and share it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    available = ort.get_available_providers()
    chosen = list(providers) if providers is not None else default_providers()
    missing = [p for p in chosen if p not in available]
    if missing or not chosen:
        raise ValueError(
            f"execution providers {missing or chosen} are not available in this onnxruntime "
            f"build (available: {available})"
        )
    if intra_op_threads is not None and intra_op_threads < 0:
        raise ValueError(f"intra_op_threads must be >= 0, got {intra_op_threads}")
    options = ort.SessionOptions()
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = intra_op_threads or 0
    # The decode and OCR threads share the cores: spinning ORT threads would steal them.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Without VNNI (AVX2-only x86 CPUs) onnxruntime's fast U8S8 int8 kernels saturate: the INT8
    # person cue scored 0.08 instead of 0.53 on the same photo. U8U8 gives those CPUs the
    # numbers VNNI gives; with VNNI, U8S8 is exact (bit-identical outputs here) and U8U8 would
    # cost an INT8 detector 2.4x its speed (docs/models.md "INT8 detectors").
    options.add_session_config_entry("session.x64quantprecision", "0" if has_vnni() else "1")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=chosen)
