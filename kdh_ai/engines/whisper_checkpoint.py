"""OpenAI Whisper checkpoints made from the packaged CTranslate2 weights, offline.

``whisper.load_model(name)`` downloads its weights; ``whisper.load_model(path)`` loads a local ``.pt`` file
holding ``{"dims": ..., "model_state_dict": ...}``. The hub's Whisper weights ship as CTranslate2 model
directories (``kdh models list``), whose ``model.bin`` is a simple binary format: a header, then for each
variable its name, shape, data type and raw bytes (CTranslate2's ``ModelSpec._serialize``). This module reads
it and renames the variables to OpenAI Whisper's layout; the attention projections that CTranslate2 fuses
(query, key and value of self-attention; key and value of cross-attention) are split again. The weights keep
their data type (float16 for the packaged models): nothing is re-quantized, so the converted model computes
what the original Whisper model computes.

A converted checkpoint is cached under ``$KDH_CACHE_DIR/openai-whisper`` (default ``~/.cache/kdh_ai``), keyed by
the SHA-256 of the source ``model.bin``, with a ``.json`` record of both SHA-256 digests; every use checks the
checkpoint's digest against that record and converts again on a mismatch (a truncated or damaged file).

Example:
    >>> from kdh_ai.registry import resolve_model
    >>> ckpt = openai_whisper_checkpoint(resolve_model("whisper-tiny.en"))  # doctest: +SKIP
    >>> import whisper; model = whisper.load_model(str(ckpt), device="cpu")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from kdh_ai.errors import InvalidInputError
from kdh_ai.items import sha256_file
from kdh_ai.registry import ModelNotAvailableError, ResolvedModel, cache_dir

__all__ = ["CONVERTER_VERSION", "alignment_heads", "ctranslate2_to_openai_whisper", "openai_whisper_checkpoint",
           "read_ctranslate2"]

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 1
"""Bumped when the conversion changes (older cached checkpoints are then converted again)."""

_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType enum order
_BINARY_VERSIONS = (5, 6)  # model.bin layouts this reader knows (ctranslate2 3.x and 4.x)


def read_ctranslate2(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read a CTranslate2 ``model.bin``: the model spec's name and its variables (aliases resolved).

    Args:
        path: The ``model.bin`` file.

    Returns:
        ``(spec_name, {variable name: array})``; bfloat16 variables come back as float32.

    Raises:
        ValueError: The file is not a CTranslate2 model of a known binary version, or it is truncated.
    """
    path = Path(path)
    buf = memoryview(path.read_bytes())
    pos = 0

    def take(fmt: str) -> Any:
        nonlocal pos
        value = struct.unpack_from("<" + fmt, buf, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def text() -> str:
        nonlocal pos
        n = take("H")
        s = bytes(buf[pos:pos + n - 1]).decode("utf-8")
        pos += n
        return s

    try:
        version = take("I")
        if version not in _BINARY_VERSIONS:
            raise InvalidInputError(f"{path}: CTranslate2 binary version {version}; this reader knows "
                             f"{', '.join(map(str, _BINARY_VERSIONS))} (convert the model with ctranslate2>=3)")
        spec = text()
        take("I")  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(take("I")):
            name = text()
            shape = tuple(take("I") for _ in range(take("B")))
            dtype = _DTYPES[take("B")]
            n_bytes = take("I")
            if pos + n_bytes > len(buf):
                raise InvalidInputError(f"{path}: truncated inside variable {name!r}; the file is incomplete")
            raw = bytes(buf[pos:pos + n_bytes])
            pos += n_bytes
            if dtype == "bfloat16":  # numpy has no bfloat16: widen to float32
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            else:
                arr = np.frombuffer(raw, dtype)
            variables[name] = arr.reshape(shape)
        for _ in range(take("I")):
            alias, target = text(), text()
            variables[alias] = variables[target]
    except struct.error:
        raise InvalidInputError(f"{path}: truncated CTranslate2 model file; reinstall or copy it again") from None
    return spec, variables


def _layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    found = {int(m.group(1)) for k in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", k))}
    if not found or found != set(range(len(found))):
        raise InvalidInputError(f"no consecutive {prefix} layers in the model")
    return len(found)


def alignment_heads(model_dir: str | Path) -> list[list[int]]:
    """The ``[layer, head]`` pairs of the decoder's cross-attention that align words with audio, from a
    CTranslate2 model directory's ``config.json`` (empty when it names none: Whisper then uses every head of
    the decoder's second half)."""
    config = Path(model_dir) / "config.json"
    if not config.exists():
        return []
    heads = json.loads(config.read_text(encoding="utf-8")).get("alignment_heads") or []
    return [[int(layer), int(head)] for layer, head in heads]


def ctranslate2_to_openai_whisper(model_dir: str | Path) -> dict[str, Any]:
    """Convert a CTranslate2 Whisper model directory to an OpenAI Whisper checkpoint (in memory).

    Args:
        model_dir: A CTranslate2 Whisper directory (``model.bin``; ``config.json`` for alignment heads).

    Returns:
        ``{"dims": {...}, "model_state_dict": {name: torch.Tensor}, "alignment_heads": [[layer, head], ...]}``:
        what ``torch.save`` writes and ``whisper.load_model`` reads (it ignores the extra key).

    Raises:
        ValueError: The directory holds no Whisper model, or a quantized one (int8 weights cannot be
            turned back into the original model: use the float16/float32 model directory).
    """
    import torch

    model_dir = Path(model_dir)
    spec, v = read_ctranslate2(model_dir / "model.bin")
    if spec != "WhisperSpec":
        raise InvalidInputError(f"{model_dir}: a {spec} model, not Whisper")
    if any(k.endswith("/weight_scale") for k in v):
        raise InvalidInputError(f"{model_dir}: the weights are quantized (int8); convert a float16 or float32 model "
                         "directory instead")
    sd: dict[str, np.ndarray] = {}

    def linear(dst: str, src: str, *, bias: bool = True) -> None:
        sd[f"{dst}.weight"] = v[f"{src}/weight"]
        if bias:
            sd[f"{dst}.bias"] = v[f"{src}/bias"]

    def norm(dst: str, src: str) -> None:
        sd[f"{dst}.weight"], sd[f"{dst}.bias"] = v[f"{src}/gamma"], v[f"{src}/beta"]

    def split(dst: str, src: str, names: tuple[str, ...]) -> None:
        """A fused projection (rows of q, k, v stacked) back into OpenAI's separate Linear layers."""
        weight, bias = v[f"{src}/weight"], v[f"{src}/bias"]
        d = weight.shape[0] // len(names)
        for i, n in enumerate(names):
            sd[f"{dst}.{n}.weight"] = weight[i * d:(i + 1) * d]
            if n == "key":  # Whisper's key projection has no bias: CTranslate2 fused zeros in
                if np.any(bias[i * d:(i + 1) * d]):
                    raise InvalidInputError(f"{model_dir}: {src} has a key bias; not an OpenAI Whisper model")
            else:
                sd[f"{dst}.{n}.bias"] = bias[i * d:(i + 1) * d]

    def block(dst: str, src: str, *, cross: bool) -> None:
        split(f"{dst}.attn", f"{src}/self_attention/linear_0", ("query", "key", "value"))
        linear(f"{dst}.attn.out", f"{src}/self_attention/linear_1")
        norm(f"{dst}.attn_ln", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.cross_attn.query", f"{src}/attention/linear_0")
            split(f"{dst}.cross_attn", f"{src}/attention/linear_1", ("key", "value"))
            linear(f"{dst}.cross_attn.out", f"{src}/attention/linear_2")
            norm(f"{dst}.cross_attn_ln", f"{src}/attention/layer_norm")
        linear(f"{dst}.mlp.0", f"{src}/ffn/linear_0")
        linear(f"{dst}.mlp.2", f"{src}/ffn/linear_1")
        norm(f"{dst}.mlp_ln", f"{src}/ffn/layer_norm")

    try:
        n_audio_layer, n_text_layer = _layers(v, "encoder"), _layers(v, "decoder")
        linear("encoder.conv1", "encoder/conv1")
        linear("encoder.conv2", "encoder/conv2")
        sd["encoder.positional_embedding"] = v["encoder/position_encodings/encodings"]
        for i in range(n_audio_layer):
            block(f"encoder.blocks.{i}", f"encoder/layer_{i}", cross=False)
        norm("encoder.ln_post", "encoder/layer_norm")
        sd["decoder.token_embedding.weight"] = v["decoder/embeddings/weight"]
        sd["decoder.positional_embedding"] = v["decoder/position_encodings/encodings"]
        for i in range(n_text_layer):
            block(f"decoder.blocks.{i}", f"decoder/layer_{i}", cross=True)
        norm("decoder.ln", "decoder/layer_norm")
        dims = {
            "n_mels": int(v["encoder/conv1/weight"].shape[1]),
            "n_audio_ctx": int(v["encoder/position_encodings/encodings"].shape[0]),
            "n_audio_state": int(v["encoder/conv1/weight"].shape[0]),
            "n_audio_head": int(v["encoder/num_heads"]),
            "n_audio_layer": n_audio_layer,
            "n_vocab": int(v["decoder/embeddings/weight"].shape[0]),
            "n_text_ctx": int(v["decoder/position_encodings/encodings"].shape[0]),
            "n_text_state": int(v["decoder/embeddings/weight"].shape[1]),
            "n_text_head": int(v["decoder/num_heads"]),
            "n_text_layer": n_text_layer,
        }
    except KeyError as exc:
        raise InvalidInputError(f"{model_dir}: variable {exc.args[0]!r} is missing; not a complete Whisper model") from None
    heads = alignment_heads(model_dir)
    state = {k: torch.from_numpy(np.array(a, copy=True)) for k, a in sd.items()}  # writable copies
    return {"dims": dims, "model_state_dict": state, "alignment_heads": heads}


def openai_whisper_checkpoint(model: ResolvedModel, *, out: Path | None = None) -> Path:
    """The OpenAI Whisper checkpoint of a model, converted on first use and verified by SHA-256 on every use.

    Args:
        model: A resolved CTranslate2 Whisper model (:func:`kdh_ai.registry.resolve_model`).
        out: Where to write the checkpoint (default: the cache, see the module docstring).

    Returns:
        The path of the ``.pt`` checkpoint.

    Raises:
        ModelNotAvailableError: The model directory holds no ``model.bin`` or cannot be converted.
    """
    import torch

    src = model.path / "model.bin"
    if not src.is_file():
        raise ModelNotAvailableError(f"{model.name}: {model.path} holds no model.bin (a CTranslate2 Whisper "
                                     "model directory is needed to make an OpenAI Whisper checkpoint)")
    src_sha = sha256_file(src)
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", model.name)
    target = out or cache_dir() / "openai-whisper" / f"{safe}-{src_sha[:16]}.pt"
    record_path = target.with_name(target.name + ".json")
    if target.exists() and record_path.exists():
        record = json.loads(record_path.read_text(encoding="utf-8"))
        if record.get("converter_version") == CONVERTER_VERSION and record.get("source_sha256") == src_sha:
            if sha256_file(target) == record.get("sha256"):
                return target
            logger.warning("%s does not match its recorded SHA-256 (damaged?): converting again", target)
    logger.info("Converting %s (%s) to an OpenAI Whisper checkpoint at %s", model.name, model.path, target)
    try:
        checkpoint = ctranslate2_to_openai_whisper(model.path)
    except ValueError as exc:
        raise ModelNotAvailableError(str(exc)) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    torch.save(checkpoint, tmp)
    record = {"source": str(src), "source_sha256": src_sha, "sha256": sha256_file(tmp),
              "converter_version": CONVERTER_VERSION, "model": model.name, "version": model.version}
    os.replace(tmp, target)
    record_path.write_text(json.dumps(record, indent=1), encoding="utf-8")
    return target
