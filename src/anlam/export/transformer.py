"""Transformer exports: ONNX (fp32, int8) for ONNX Runtime and int8 for OpenVINO, without optimum.

One trace, ``torch.onnx.export`` of the encoder with eager attention (the pattern ONNX Runtime's
transformer optimiser fuses into its Attention kernel), then:
- onnx: fused graph (attention, layer norm, GELU), fp32;
- onnx-int8: the fused graph with dynamic int8 quantisation, one scale per weight channel;
- openvino-int8: ``openvino.convert_model`` + ``nncf.quantize`` (static int8, activation ranges
  calibrated on Turkish text), the rest left to OpenVINO's own precision choice.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from anlam.errors import AnlamError
from anlam.export.corpus import sample
from anlam.io import write_json, write_text
from anlam.models.manifest import MANIFEST, MODULE_TYPE

logger = logging.getLogger(__name__)

OPSET = 17
# model types whose ONNX graph ONNX Runtime's transformer optimiser knows how to fuse
_ORT_FUSABLE = {"bert": "bert", "xlm-roberta": "bert", "roberta": "bert", "distilbert": "bert",
                "camembert": "bert", "mpnet": "bert", "electra": "bert"}


def _encoder_wrapper(hf, input_names: list[str]):
    """The Hugging Face encoder as positional ``inputs -> last_hidden_state`` (transformers 5 reorders kwargs)."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.hf = hf

        def forward(self, *inputs):
            return self.hf(**dict(zip(input_names, inputs))).last_hidden_state

    return Encoder().eval()


def trace_onnx(st_model, path: Path) -> list[str]:
    """Write the first module's encoder to ``path`` as ONNX; return its input names.

    Raises:
        AnlamError: the first module is not a Hugging Face text transformer.
    """
    import torch

    hf, tokenizer = _encoder(st_model)
    hf.eval()
    hf.set_attn_implementation("eager")
    example = tokenizer(["query: Aşırı öğrenme nedir?", "GPU'lar"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in example]
    axes = {n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer notes about shape checks that hold for every input
        torch.onnx.export(_encoder_wrapper(hf, names), tuple(example[n] for n in names), str(path), dynamo=False,
                          input_names=names, output_names=["last_hidden_state"], dynamic_axes=axes,
                          opset_version=OPSET, do_constant_folding=True)
    return names


def _encoder(st_model):
    """The first module's Hugging Face model and tokenizer.

    Raises:
        AnlamError: the first module is not a Hugging Face text transformer.
    """
    module = st_model[0]
    hf = getattr(module, "auto_model", None)
    tokenizer = getattr(module, "tokenizer", None)
    if hf is None or tokenizer is None:
        raise AnlamError(f"cannot export a model whose first module is {type(module).__name__}, "
                         "only transformer text encoders")
    return hf, tokenizer


def optimize_onnx(src: Path, dst: Path, config) -> None:
    """Fuse attention / layer norm / GELU with ONNX Runtime's transformer optimiser (known encoders only)."""
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = _ORT_FUSABLE.get(getattr(config, "model_type", ""), None)
    if model_type is None:
        logger.info("no fusion recipe for model type %r; keeping the plain graph", config.model_type)
        src.replace(dst)
        return
    optimized = optimize_model(str(src), model_type=model_type, num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size)
    logger.info("fused operators: %s", {k: v for k, v in optimized.get_fused_operator_statistics().items() if v})
    optimized.save_model_to_file(str(dst))


def quantize_onnx(src: Path, dst: Path) -> None:
    """Dynamic int8: int8 weights (one scale per channel), activations quantised per batch at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def quantize_openvino(src: Path, dst: Path, st_model, input_names: list[str], texts: Sequence[str],
                      calibration_size: int) -> None:
    """Static int8 with NNCF: activation ranges from ``calibration_size`` Turkish texts (query and passage prompts)."""
    import nncf
    import openvino as ov

    prompts = [p for p in ((st_model.prompts or {}).get(k) for k in ("query", "passage")) if p] or [""]
    chosen = sample(texts, calibration_size)
    tokenizer = st_model[0].tokenizer
    max_len = st_model.max_seq_length
    items = [tokenizer(prompts[i % len(prompts)] + t, truncation=True, max_length=max_len, return_tensors="np")
             for i, t in enumerate(chosen)]
    dataset = nncf.Dataset(items, lambda x: {n: x[n].astype(np.int64) for n in input_names})
    quantized = nncf.quantize(ov.convert_model(str(src)), dataset, model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(items))
    ov.save_model(quantized, str(dst))


def export_transformer(st_model, out: Path, fmt: str, texts: Sequence[str], calibration_size: int = 300) -> dict:
    """Write ``fmt`` (onnx, onnx-int8, openvino-int8) of a loaded SentenceTransformer into the empty folder ``out``.

    Returns:
        The manifest written to ``out/anlam_export.json``.
    """
    hf, _ = _encoder(st_model)
    with tempfile.TemporaryDirectory(prefix="anlam-export-") as tmp:
        traced = Path(tmp) / "traced.onnx"
        input_names = trace_onnx(st_model, traced)
        if fmt == "openvino-int8":
            if not texts:
                raise AnlamError("openvino-int8 needs calibration texts (--corpus)")
            file, extra = "openvino_model.xml", ["openvino_model.bin"]
            quantize_openvino(traced, out / file, st_model, input_names, texts, calibration_size)
        else:
            file, extra = "model.onnx", []
            fused = Path(tmp) / "fused.onnx"
            optimize_onnx(traced, fused, hf.config)
            if fmt == "onnx-int8":
                quantize_onnx(fused, out / file)
            else:
                fused.replace(out / file)
    _save_sentence_transformer_parts(st_model, out)
    manifest = {
        "format": fmt,
        "runtime": "openvino" if fmt.startswith("openvino") else "onnxruntime",
        "file": file,
        "extra_files": extra,
        "inputs": input_names,
        "hidden_size": int(hf.config.hidden_size),
        "max_seq_length": int(st_model.max_seq_length),
        "dimension": int(st_model.get_embedding_dimension()),
    }
    write_json(out / MANIFEST, manifest)
    return manifest


def _save_sentence_transformer_parts(st_model, out: Path) -> None:
    """Tokenizer, HF config, prompts and every module after the encoder, plus a modules.json naming anlam's runtime."""
    st_model[0].tokenizer.save_pretrained(str(out))
    st_model[0].auto_model.config.save_pretrained(str(out))
    entries = [{"idx": 0, "name": "0", "path": "", "type": MODULE_TYPE}]
    for idx, module in enumerate(list(st_model)[1:], start=1):
        sub = f"{idx}_{type(module).__name__}"
        (out / sub).mkdir()
        module.save(str(out / sub))
        entries.append({"idx": idx, "name": str(idx), "path": sub,
                        "type": f"{type(module).__module__}.{type(module).__name__}"})
    write_json(out / "modules.json", entries)
    write_json(out / "config_sentence_transformers.json", {
        "prompts": dict(st_model.prompts or {}),
        "default_prompt_name": st_model.default_prompt_name,
        "similarity_fn_name": st_model.similarity_fn_name,
        "model_type": "SentenceTransformer",
    })
    write_text(out / "sentence_bert_config.json", f'{{"max_seq_length": {int(st_model.max_seq_length)}}}\n')
