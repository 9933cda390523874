"""The translation prompt, shared token for token by training and the runtime.

The user turn is "Translate the following {src} text into {tgt}.\n{text}", wrapped in the base
model's chat template. The template is rendered once (with transformers, at train or export time)
around a placeholder and split into a token-exact prefix and suffix. Both sides then build a
prompt the same way, `prefix_ids + encode(text) + suffix_ids`, so the runtime needs neither Jinja
nor transformers and can never drift from what the adapters were trained on.
"""
from dataclasses import dataclass

from modmt.runtime.languages import Language

# Stands in for the source text while the chat template is rendered; split on afterwards.
SOURCE_SLOT = "\u2063MODMT_SOURCE\u2063"


def instruction(src: Language, tgt: Language) -> str:
    return f"Translate the following {src.name} text into {tgt.name}."


def user_message(src: Language, tgt: Language, text: str) -> str:
    return f"{instruction(src, tgt)}\n{text}"


def clean_text(text: str) -> str:
    """What is translated: the line without surrounding whitespace (the same at train and run time)."""
    return text.strip()


@dataclass(frozen=True)
class PromptTemplate:
    """Token ids around the source text, and the id that ends the assistant's turn."""
    prefix_ids: tuple[int, ...]
    suffix_ids: tuple[int, ...]
    end_of_turn_id: int

    def source_ids(self, tokenizer, text: str) -> list[int]:
        """Prompt ids for one source line. `tokenizer` is a `tokenizers.Tokenizer`."""
        return self.wrap(tokenizer.encode(clean_text(text), add_special_tokens=False).ids)

    def wrap(self, body_ids: list[int]) -> list[int]:
        """The source's token ids between the prefix and the suffix."""
        return [*self.prefix_ids, *body_ids, *self.suffix_ids]

    def target_ids(self, tokenizer, text: str) -> list[int]:
        """What the model is trained to emit: the translation, then the end of its turn."""
        return [*tokenizer.encode(clean_text(text), add_special_tokens=False).ids, self.end_of_turn_id]

    def to_json(self) -> dict:
        return {"prefix_ids": list(self.prefix_ids), "suffix_ids": list(self.suffix_ids),
                "end_of_turn_id": self.end_of_turn_id}

    @classmethod
    def from_json(cls, data: dict) -> "PromptTemplate":
        return cls(tuple(int(i) for i in data["prefix_ids"]), tuple(int(i) for i in data["suffix_ids"]),
                   int(data["end_of_turn_id"]))
