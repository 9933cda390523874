"""The prompt the adapters are trained on is, token for token, the one the runtime sends."""
import json

import pytest
from tokenizers import Tokenizer

from modmt.runtime.prompt import PromptTemplate, user_message
from modmt.train.models import load_tokenizer
from modmt.train.prompts import IGNORE_INDEX, render_prompt, training_example

TEXTS = ["The cat sleeps on the sofa.", "  leading and trailing spaces  ", "猫はソファで寝ています。",
         "tabs\tinside, 3 digits 123 and émigré", "x"]


@pytest.mark.parametrize("src, tgt", [("ja", "zh"), ("en", "fr"), ("de", "en"), ("en", "en")])
def test_train_and_runtime_prompt_ids_are_identical(tiny_model_dir, registry, src, tgt):
    hf_tokenizer = load_tokenizer(tiny_model_dir)
    template = render_prompt(hf_tokenizer, registry.get(src), registry.get(tgt))
    # The runtime side: the template as an export stores it, and the bare `tokenizers` tokenizer.
    runtime_template = PromptTemplate.from_json(json.loads(json.dumps(template.to_json())))
    runtime_tokenizer = Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json"))
    for text in TEXTS:
        example = training_example(template, hf_tokenizer.backend_tokenizer, text, "Le chat.")
        n_prompt = example["labels"].count(IGNORE_INDEX)
        runtime_ids = runtime_template.source_ids(runtime_tokenizer, text)
        assert example["input_ids"][:n_prompt] == runtime_ids
        # ... and both equal what the chat template itself produces for the whole user turn.
        reference = hf_tokenizer.apply_chat_template(
            [{"role": "user", "content": user_message(registry.get(src), registry.get(tgt), text.strip())}],
            add_generation_prompt=True, tokenize=True)
        reference = reference["input_ids"] if isinstance(reference, dict) else reference
        assert runtime_ids == list(reference)


def test_training_target_ends_the_turn(tiny_model_dir, registry):
    hf_tokenizer = load_tokenizer(tiny_model_dir)
    template = render_prompt(hf_tokenizer, registry.get("en"), registry.get("fr"))
    assert template.end_of_turn_id == hf_tokenizer.convert_tokens_to_ids("<|im_end|>")
    example = training_example(template, hf_tokenizer.backend_tokenizer, "The cat.", "Le chat.")
    answer = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert answer[-1] == template.end_of_turn_id
    assert hf_tokenizer.decode(answer[:-1]) == "Le chat."
    assert len(example["labels"]) == len(example["input_ids"])
