"""Training machinery: the one loop for every task and what serves it.

    engine       the loop (`train`), one optimisation step (`train_step`), `evaluate`, `visualize`
    state        `TrainState`: model, optimizer, scheduler, step counters, RNG -- saved and restored whole
    optimizer    Adam as the official TF code runs it (`KerasAdam`)
    schedule     the paper's linear warm-up + exponential decay
    checkpoint   atomic checkpoint files with checksums, safetensors export
    runlog       metrics.jsonl (+ TensorBoard)
    distributed  torchrun process groups, rank-0 helpers, cross-rank reductions

Rules (tests/test_layering.py): this package imports the leaves (`config`, `shapes`), `data` (the step-indexed
sources) and the `tasks` protocol, never a model class: a model is an `nn.Module` called on `batch["image"]`.
"""
