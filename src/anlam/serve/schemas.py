"""Request and response bodies of the HTTP API (they also make the OpenAPI page at ``/docs``).

``/v1/embeddings`` follows OpenAI's embeddings API field for field (``input`` may be token ids,
as in OpenAI's schema; they are the served model's own ids), so the official ``openai`` client
and tools built on it work unchanged. Two additions: ``input_type`` (the name NVIDIA's
OpenAI-compatible embedding servers use for the prompt) and ``truncate`` (Text Embeddings
Inference's switch for inputs longer than the model reads).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

InputType = Literal["query", "passage", "none"]
InputTypeField: Any = Field(  # Any: Field("query") is typed str, the fields it fills are Literal
    "query",
    description='Prompt the texts are embedded with: "query" for questions and short sentences, "passage" for '
                'documents you index, "none" for no prompt. Models without prompts ignore it.',
)
ModelField = Field(None, description="Echoed back; this server serves one model, whatever the name.")
TruncateField = Field(
    None,
    description="An input longer than the model reads (prompt and special tokens included) is an error (413) "
                "unless this is true: then only its first tokens are embedded. Default: the server's --truncate.",
)
TokenIds = list[StrictInt]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")  # OpenAI clients may send fields we do not use


class EmbeddingRequest(_Request):
    input: str | list[str] | TokenIds | list[TokenIds] = Field(
        description="A text, a list of texts, a text as the model's token ids (what "
                    "tokenizer(text, add_special_tokens=False) gives; the prompt and special tokens are added "
                    "as for text), or a list of those.",
        examples=["Aşırı öğrenme nedir?"])
    model: str | None = ModelField
    dimensions: int | None = Field(None, description="Keep the first N dimensions, renormalised (Matryoshka use).")
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: each vector as little-endian float32 bytes, as OpenAI sends it.")
    input_type: InputType = InputTypeField
    truncate: bool | None = TruncateField
    user: str | None = None

    @field_validator("input", mode="before")
    @classmethod
    def _one_shape(cls, value: Any) -> Any:
        """One clear message for a mixed list, instead of one per member of the union."""
        if isinstance(value, str) or (isinstance(value, list) and (
                all(isinstance(v, str) for v in value) or all(type(v) is int for v in value)
                or all(isinstance(v, list) and all(type(x) is int for x in v) for v in value))):
            return value
        raise ValueError("expected a text, a list of texts, a list of token ids or a list of token-id lists")


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class SimilarityRequest(_Request):
    texts: list[str] | None = Field(None, description="Texts to compare with each other (a cosine matrix).",
                                    examples=[["Aşırı öğrenme nedir?", "Overfitting nasıl önlenir?"]])
    pairs: list[tuple[str, str]] | None = Field(None, description="Pairs to score (one cosine per pair).")
    input_type: InputType = InputTypeField
    truncate: bool | None = TruncateField
    model: str | None = ModelField


class SimilarityResponse(BaseModel):
    object: Literal["similarity"] = "similarity"
    model: str
    matrix: list[list[float]] | None = Field(None, description="``matrix[i][j]`` = cosine of texts i and j.")
    scores: list[float] | None = Field(None, description="Cosine of each pair, in order.")
    usage: Usage


class ParaphraseRequest(_Request):
    pairs: list[tuple[str, str]] = Field(
        description="Sentence pairs.",
        examples=[[["Model eğitim verisini ezberliyor.", "Model aşırı öğrenme yapıyor."]]])
    threshold: float | None = Field(None, gt=0, lt=1,
                                    description="Decide at this probability instead of the calibrated one.")
    truncate: bool | None = TruncateField
    model: str | None = ModelField


class ParaphraseResult(BaseModel):
    index: int
    probability: float
    paraphrase: bool
    cosine: float


class ParaphraseResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    threshold: float
    data: list[ParaphraseResult]
    usage: Usage


class SearchRequest(_Request):
    query: str | list[str] = Field(description="A query or a list of queries.", examples=["gradyan patlaması"])
    k: int = Field(10, ge=1, le=100, description="Hits per query.")
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    filter: dict[str, str | list[str]] | None = Field(
        None, description='Document metadata that must match, e.g. {"konu": ["optimizasyon", "derin-ogrenme"]}; '
                          '"id" matches the document id.')


class SearchResult(BaseModel):
    index: int
    query: str
    hits: list[dict[str, Any]]


class SearchResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[SearchResult]


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "anlam"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]


class ErrorBody(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody
