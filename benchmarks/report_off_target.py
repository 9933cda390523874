"""The report's off-target section: per Table-1 row, the share of outputs not in the target language."""
from modmt.benchmarks.off_target import pooled_shares
from modmt.benchmarks.report_cells import fmt, row_label


def percent(share) -> str:
    return "-" if share is None else fmt(100 * share, 1)


def off_target_lines(rows: dict, labels: dict, order: list, langs: list, all_dirs: list) -> list[str]:
    """Each row's off-target, source-language and copy shares over every direction's outputs, the x->en
    directions apart (where the paper's English recipe copies), and the detector's floor on the references."""
    to_en = [d for d in all_dirs if d.endswith("-en")]
    lines = ["## Outputs not in the target language", "",
             "Each output labelled by py3langid restricted to the pool's languages (`benchmarks/off_target.py`); "
             "the floor is the share of *references* it labels off-target, its own error. Copies: outputs equal to "
             "their source (only where the cell kept its sources).", "",
             "| row | outputs | off-target % | in the source language % | copies % | x→en off-target % | floor % |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for key in order:
        cells = [rows[key][d] for d in all_dirs if d in rows[key]]
        if not cells:
            continue
        every = pooled_shares(cells, langs)
        to_english = pooled_shares([rows[key][d] for d in to_en if d in rows[key]], langs)
        lines.append(f"| {row_label(key, labels)} | {every['outputs']} | {percent(every['off_target'])} | "
                     f"{percent(every['source_language'])} | {percent(every['copies'])} | "
                     f"{percent(to_english['off_target']) if to_english['outputs'] else '-'} | "
                     f"{percent(every['reference_off_target'])} |")
    return lines + [""]
