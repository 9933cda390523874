"""python guard-fallbacks.py BASE PARAGRAPHS OUT.jsonl (langdetect installed): which fallback puts an off-target sentence into its target language (issue 44, part 3): measured on held-out
paragraphs cut into sentences as the server cuts them. For each sentence: beam 5 n-best (guard verdict), then,
where no hypothesis is on target, (a) w 0:1 (LoRA_out alone) at beam 5, (b) beam 10 at the direction's weights,
(c) w 1:9@1.5 (a stronger delta). Labels: langdetect (independent) for the final figures."""
import json, sys, time
from itertools import permutations
from pathlib import Path
from langdetect import DetectorFactory, detect_langs
DetectorFactory.seed = 0
from modmt.runtime.decoding import DecodeSettings, RunningBatch, hypotheses_of
from modmt.runtime.routed_translator import RoutedTranslator
from modmt.runtime.target_guard import OFF_TARGET, ON_TARGET, GUARDED
from modmt.runtime.text_pieces import split_text, token_counter, pieces_of

base, paras, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
routed = RoutedTranslator([base], provider="cpu")
count = token_counter(routed.tokenizer)
langs = sorted({s for s, _ in routed.directions})
texts = {l: (paras / f"{l}.txt").read_text().splitlines() for l in langs}

def ld(t):
    try:
        return detect_langs(t)[0].lang.split("-")[0] if t.strip() else None
    except Exception:
        return None

def nbest(sentences, src, tgt, w, beam):
    items = routed.requests(len(sentences), src, tgt, w)
    res = [None] * len(sentences)
    s = DecodeSettings(beam=beam, max_new_tokens=256, batch_size=8)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    for at in range(0, len(order), 8):
        chunk = order[at:at + 8]
        prompts = [routed.encode(sentences[i], items[i][0].template)[0] for i in chunk]
        for f in RunningBatch(lambda rows: routed.batch_decoder([items[i] for i in rows]), chunk, prompts, s,
                              routed.stop_ids, routed.pad_id, routed.pad_multiple).run():
            res[f.item] = hypotheses_of(f, routed.tokenizer)
    return res

rows = []
started = time.time()
for src, tgt in permutations(langs, 2):
    sentences = [p for t in texts[src] for p in pieces_of(split_text(t, src, count, 512))]
    first = nbest(sentences, src, tgt, None, 5)
    record = []
    for s, hyps in zip(sentences, first):
        index, verdict = routed.guard.choose(hyps, s, tgt)
        record.append({"src": src, "tgt": tgt, "source": s, "beam5": hyps, "verdict": verdict, "chosen": hyps[index]})
    todo = [i for i, r in enumerate(record) if r["verdict"] == OFF_TARGET]
    for name, w, beam in (("w0:1", "0:1", 5), ("beam10", None, 10), ("w1:9@1.5", "1:9@1.5", 5)):
        if todo:
            again = nbest([sentences[i] for i in todo], src, tgt, w, beam)
            for i, hyps in zip(todo, again):
                index, verdict = routed.guard.choose(hyps, sentences[i], tgt)
                record[i][name] = {"verdict": verdict, "chosen": hyps[index]}
    for r in record:
        r["ld_beam5_best"] = ld(r["beam5"][0]); r["ld_chosen"] = ld(r["chosen"])
        for name in ("w0:1", "beam10", "w1:9@1.5"):
            if name in r:
                r[name]["ld"] = ld(r[name]["chosen"])
    rows += record
    n = len(record)
    print(f"{src}->{tgt}: {n} sentences; beam best off (ld) {sum(r['ld_beam5_best'] != tgt for r in record)}; "
          f"guarded off {sum(r['ld_chosen'] != tgt for r in record)}; guard off-target verdicts {len(todo)}; "
          + "; ".join(f"{k} fixes {sum(1 for r in record if k in r and r[k]['ld'] == tgt)}"
                      for k in ("w0:1", "beam10", "w1:9@1.5")) + f"  [{time.time()-started:.0f}s]", flush=True)
out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
