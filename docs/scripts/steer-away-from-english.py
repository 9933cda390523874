"""python steer-away-from-english.py BASE FALLBACKS.jsonl LAMBDA...: the direction's merge plus -LAMBDA * LoRA_out(en)
(Setting 1), on the sentences whose beam-5 best was off-target in guard-fallbacks.py's output, target != en.
Labels: langdetect (installed beside modmt)."""
import json, sys
import numpy as np
from langdetect import DetectorFactory, detect_langs
DetectorFactory.seed = 0
from modmt.runtime.decoding import DecodeSettings, RunningBatch, hypotheses_of
from modmt.runtime.routed_translator import RoutedTranslator, RoutedDecoder, COEF

routed = RoutedTranslator([sys.argv[1]], provider='cpu')
rows = [json.loads(l) for l in open(sys.argv[2])]
off = [r for r in rows if r['ld_beam5_best'] != r['tgt'] and r['tgt'] != 'en']
print(len(off), 'off-target sentences into x != en')
# which bank index is LoRA_out(en)?
en_out = None
for d in routed.directions.values():
    if d.tgt == 'en':
        en_out = d.adapters[1]; break
def ld(t):
    try: return detect_langs(t)[0].lang.split('-')[0] if t.strip() else None
    except Exception: return None

def decode(sentences, tgts, srcs, lam, beam=5):
    items = [routed.requests(1, s, t)[0] for s, t in zip(srcs, tgts)]
    out = [None]*len(sentences)
    st = DecodeSettings(beam=beam, max_new_tokens=256, batch_size=8)
    def decoder_for(idx):
        dec = routed.batch_decoder([items[i] for i in idx])
        table = dec.constant[COEF].copy()
        a = routed.adapters[en_out]; start = routed.offsets[en_out]
        cols = slice(start, start + a.rank)
        for slot in range(table.shape[0]):
            table[slot, :, 0, cols] += -lam * a.scaling   # Setting 1: cA = w*scaling, cB = 1
            table[slot, :, 1, cols] = 1.0
        return RoutedDecoder(dec.inner, {**dec.constant, COEF: table}, dec.route)
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    for at in range(0, len(order), 8):
        chunk = order[at:at+8]
        prompts = [routed.encode(sentences[i], items[i][0].template)[0] for i in chunk]
        for f in RunningBatch(decoder_for, chunk, prompts, st, routed.stop_ids, routed.pad_id, routed.pad_multiple).run():
            out[f.item] = hypotheses_of(f, routed.tokenizer)
    return out

for lam in [float(x) for x in sys.argv[3:]]:
    hyps = decode([r['source'] for r in off], [r['tgt'] for r in off], [r['src'] for r in off], lam)
    fixed = 0; ex = []
    for r, h in zip(off, hyps):
        i, v = routed.guard.choose(h, r['source'], r['tgt'])
        if ld(h[i]) == r['tgt']:
            fixed += 1; ex.append((r['src'], r['tgt'], h[i][:120]))
    print(f'lambda {lam}: {fixed} of {len(off)} now in the target language', flush=True)
    for e in ex[:4]: print('   ', e)
