"""What a reproduce run trains: the adapter pools (the paper's English recipe and the pooled one), full fine-tuning and learned weights."""
import json
import shutil

from itertools import permutations
from pathlib import Path

from modmt.benchmarks.reproduce.profiles import Profile
from modmt.runtime.atomic import write_json_atomic
from modmt.runtime.languages import ENGLISH


def directions_of(langs: list[str]) -> list[tuple[str, str]]:
    return list(permutations(langs, 2))


def train_adapters(model_dir, corpus, registry, langs, pool_dir, profile: Profile, english="copy", mix=None):
    from modmt.train.adapters import LoraSettings, train_pool
    from modmt.train.trainer import TrainSettings

    settings = TrainSettings(epochs=profile.adapter_epochs, learning_rate=profile.adapter_lr, batch_size=8,
                             max_pairs=profile.adapter_pairs, seed=0, save_steps=25)
    from modmt.train.pool import Pool

    train_pool(model_dir, corpus, registry, langs, pool_dir, LoraSettings(), settings, resume=True, english=english,
               mix=mix)
    # Every adapter of the pool, also those an earlier (killed) attempt finished: pool.json has them all.
    return {key: {"pairs": i["pairs"], "steps": i["steps"], "final_loss": i["final_loss"], "seconds": i["seconds"]}
            for key, i in Pool(pool_dir).read()["adapters"].items()}


def pooled_english_pool(main: Path, pooled: Path, recipe: str = "pooled") -> None:
    """A second pool that shares every non-English adapter of `main` and will hold `recipe` English ones."""
    from modmt.train.pool import Pool

    meta = Pool(main).read()
    target = Pool(pooled)
    if target.exists():
        return
    for key in meta["adapters"]:
        role, lang = key.split("/")
        if lang != ENGLISH and not (pooled / role / lang).exists():
            shutil.copytree(main / role / lang, pooled / role / lang)
    adapters = {k: v for k, v in meta["adapters"].items() if not k.endswith(f"/{ENGLISH}")}
    write_json_atomic(target.meta_path, {**meta, "english_adapters": recipe, "adapters": adapters,
                                         "languages": sorted({k.split("/")[1] for k in adapters})})


# What a tuning trial is scored as: full fine-tuning as itself, the adapters as the pooled recipe's
# Setting 1 at 1:9 (the row the project recommends).


def train_full_model(model_dir, corpus, registry, langs, out: Path, profile: Profile):
    from modmt.train.full import train_full
    from modmt.train.trainer import TrainSettings

    if (out / "modmt-full.json").exists():  # finished in an earlier run whose stage record was lost
        info = json.loads((out / "modmt-full.json").read_text())
    else:
        settings = TrainSettings(epochs=profile.full_epochs, learning_rate=profile.full_lr, batch_size=8,
                                 max_pairs=profile.full_pairs, seed=0, save_steps=25)
        info = train_full(model_dir, corpus, registry, langs, out, settings, resume=True)
    return {"steps": info["steps"], "final_loss": info["final_loss"], "examples": info["examples"]}


def learn_all_weights(model_dir, pool_dir: Path, corpus, registry, langs, profile: Profile, only_english=False):
    from modmt.train.pool import Pool
    from modmt.train.trainer import TrainSettings
    from modmt.train.weight_learning import learn_weights

    pool = Pool(pool_dir)
    settings = TrainSettings(epochs=profile.weight_epochs, learning_rate=profile.weight_lr, batch_size=8,
                             max_pairs=profile.weight_pairs, seed=0)
    done = {}
    for src, tgt in directions_of(langs):
        if only_english and ENGLISH not in (src, tgt):
            continue
        if not pool.weights_file(src, tgt).exists():  # one direction at a time: a kill loses at most one
            learn_weights(model_dir, pool, corpus, registry, src, tgt, settings)
        layers = json.loads(pool.weights_file(src, tgt).read_text())["layers"]
        done[f"{src}-{tgt}"] = sum(layer["w_out"] for layer in layers) / len(layers)
    return done
