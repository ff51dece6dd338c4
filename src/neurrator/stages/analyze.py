"""``neurrator analyze``: scaling curves, area/cell-type probes, SAE concepts, single neurons,
attribution (paper §4.2, §5, A.7, A.8; DINA-style attribution).

Reads the dataset, split and stimulus (ingest), the patch targets (embed), the trained encoder
(train) and the reference captions (narrate's captioner, else the stimulus's); builds the
:class:`~neurrator.analysis.inputs.AnalysisInputs` the selected analyses need and runs each
one (``analysis.analyses``, or ``neurrator analyze --only NAME``). Writes one
:class:`~neurrator.analysis.result.AnalysisResult` per analysis into ``analyze/<analysis>/``
and ``analyze/timings.json`` (wall seconds per analysis). ``docs/analysis_outputs.md``
documents every file.
"""

from __future__ import annotations

import time

from tqdm.auto import tqdm

from neurrator import runio
from neurrator.analysis.suite import needed_inputs, select
from neurrator.config import RunConfig
from neurrator.core.seed import seed_everything
from neurrator.core.threads import thread_limit
from neurrator.rundir import RunDir
from neurrator.stages import StageResult


def run(run: RunDir, config: RunConfig) -> StageResult:
    """Run the selected analyses; one folder per analysis, ``timings.json`` beside them."""
    seed_everything(config.seed)
    t0 = time.perf_counter()
    with thread_limit(config.analysis.num_threads):
        analyses = select(config.analysis.analyses)
        inputs = runio.read_analysis_inputs(run, config, needed_inputs(analyses, config.analysis))
        timings = {"load_inputs": round(time.perf_counter() - t0, 3)}
        rows, outputs = [], []
        bar = tqdm(analyses, desc="analyses", unit="analysis")
        for analysis in bar:
            bar.set_postfix_str(analysis.name)
            t = time.perf_counter()
            result = analysis.run(inputs, config.analysis)
            outputs.append(str(runio.write_analysis(run, result)))
            timings[analysis.name] = round(time.perf_counter() - t, 3)
            rows.append((analysis.name, timings[analysis.name], result.line))
    timings["total"] = round(time.perf_counter() - t0, 3)
    if inputs.concepts is not None and inputs.concepts.trained:
        run.mark_stand_in("sae", "TopK SAE trained here on the run's image corpus (paper: the pretrained "
                                 "Prisma CLIP B/32 SAE, labelled on ImageNet)")
    outputs.append(str(runio.write_analysis_timings(run, {
        "seconds": timings, "narrator": inputs.narrate.name, "scaling_narrator": inputs.narrate_fast.name,
        "n_windows": len(inputs.frames), "n_units": inputs.n_units, "stand_ins": inputs.stand_ins,
    })))
    width = max((len(r[0]) for r in rows), default=8)
    table = "\n".join([f"{'analysis':<{width}}  seconds  result",
                       *(f"{n:<{width}}  {s:7.1f}  {line}" for n, s, line in rows)])
    return StageResult(
        summary=f"analyze: {len(rows)} analyses in {timings['total']:.1f} s on {len(inputs.frames)} test windows "
        f"× {inputs.n_units} units (narrator {inputs.narrate.name}; scaling {inputs.narrate_fast.name})",
        outputs=outputs,
        table=table,
    )
