"""Render a base model's chat template into the shared PromptTemplate, and build training examples with it."""
from modmt.runtime.errors import ModmtError
from modmt.runtime.languages import Language
from modmt.runtime.prompt import SOURCE_SLOT, PromptTemplate, user_message

IGNORE_INDEX = -100  # label value the loss skips: the prompt is not trained on


def render_prompt(tokenizer, src: Language, tgt: Language) -> PromptTemplate:
    """Split the chat-templated prompt for src->tgt around the source text, in token ids."""
    if not getattr(tokenizer, "chat_template", None):
        raise ModmtError("the base model's tokenizer has no chat template; modmt needs an instruct "
                         "(chat) model such as Qwen2.5-0.5B-Instruct")
    text = tokenizer.apply_chat_template([{"role": "user", "content": user_message(src, tgt, SOURCE_SLOT)}],
                                         tokenize=False, add_generation_prompt=True)
    if text.count(SOURCE_SLOT) != 1:
        raise ModmtError("the chat template does not keep the user message intact; it cannot be split "
                         "into a prefix and suffix")
    prefix, suffix = text.split(SOURCE_SLOT)
    backend = tokenizer.backend_tokenizer
    # What the template writes after the assistant's text: its first token ends the turn.
    finished = tokenizer.apply_chat_template(
        [{"role": "user", "content": "x"}, {"role": "assistant", "content": SOURCE_SLOT}], tokenize=False)
    closing = backend.encode(finished.split(SOURCE_SLOT, 1)[1], add_special_tokens=False).ids
    if not closing:
        raise ModmtError("the chat template writes nothing after the assistant's turn, so there is no "
                         "end-of-turn token to stop generation on")
    return PromptTemplate(tuple(backend.encode(prefix, add_special_tokens=False).ids),
                          tuple(backend.encode(suffix, add_special_tokens=False).ids), closing[0])


def stop_token_ids(template: PromptTemplate, eos) -> list[int]:
    """Generation stops at the end of the chat turn and at the model's own eos (an id, a list, or None)."""
    eos_ids = eos if isinstance(eos, list) else [eos] if eos is not None else []
    return sorted({template.end_of_turn_id, *eos_ids})


def training_example(template: PromptTemplate, tokenizer, source: str, target: str) -> dict:
    """input_ids = prompt + target + end of turn; labels mask the prompt so only the target is learned.

    `tokenizer` is the `tokenizers.Tokenizer` the runtime uses too (a transformers tokenizer's
    `.backend_tokenizer`), so prompt ids here are the runtime's, token for token.
    """
    prompt = template.source_ids(tokenizer, source)
    answer = template.target_ids(tokenizer, target)
    return {"input_ids": prompt + answer, "labels": [IGNORE_INDEX] * len(prompt) + answer}
