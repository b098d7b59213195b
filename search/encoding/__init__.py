"""The encoding layer: the model that turns texts into vectors, its fast backends and how ``auto`` picks one.

=====================  =======================================================================================
module                 role
=====================  =======================================================================================
``encoder``            :class:`Encoder` (what callers need) and :class:`SentenceTransformerEncoder`
``load``               :func:`load_encoder`: the encoder that the settings name (``ESCO_BACKEND=auto`` resolved)
``choice``             ``auto``: every usable backend measured (quality and speed) once, the fastest kept
``check``              the quality check against torch fp32 on the shipped check set
``prepare``            :func:`prepare_backend`: onnx/openvino exports, once, in a child process
``openvino_export``,   the exports themselves (run by ``export_worker`` in the child)
``onnx_export``
``export_cache``       where exports and verdicts live; fingerprints, manifests, the export lock
``hardware``           the CPU (model, flags, read once) and the torch device
``packages``           which backends this environment can import; package versions
``data``               the check set and calibration texts (``data/*.json``)
=====================  =======================================================================================

Imports run one way: nothing here imports the stores, the searcher or the evaluation; importing this package
imports neither torch nor sentence-transformers (they load with the first model).
"""

from search.encoding.check import QualityCheck, check_quality
from search.encoding.choice import BackendChoice, candidates, choose_backend
from search.encoding.encoder import PROBE_TEXT, Encoder, SentenceTransformerEncoder, probe_similarity, resolve_precision
from search.encoding.export_cache import cache_root
from search.encoding.hardware import cpu_has_bf16, cpu_info
from search.encoding.load import SharedEncoder, int8_backend, load_encoder
from search.encoding.packages import BACKEND_PRECISIONS, check_backend
from search.encoding.prepare import BackendModel, prepare_backend

__all__ = [
    "BACKEND_PRECISIONS",
    "PROBE_TEXT",
    "BackendChoice",
    "BackendModel",
    "Encoder",
    "QualityCheck",
    "SentenceTransformerEncoder",
    "SharedEncoder",
    "cache_root",
    "candidates",
    "check_backend",
    "check_quality",
    "choose_backend",
    "cpu_has_bf16",
    "cpu_info",
    "int8_backend",
    "load_encoder",
    "prepare_backend",
    "probe_similarity",
    "resolve_precision",
]
