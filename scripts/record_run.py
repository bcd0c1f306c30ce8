"""Rules write_model_card and record_run: a run's model card beside its model, and its record."""

from pathlib import Path

from mednca.io import atomic_path, write_json
from mednca.logs import run_logged
from mednca.records import model_card, run_record

inputs, output = snakemake.input, snakemake.output


def optional(name):
    """An optional input's single path, or None when the rule has none for this run."""
    value = inputs.get(name)
    if not value:
        return None
    return value if isinstance(value, str) else value[0]


def write():
    record = run_record(
        dataset=snakemake.wildcards.dataset,
        model=snakemake.wildcards.model,
        seed=int(snakemake.wildcards.seed),
        training_json=inputs.training,
        manifest_csv=inputs.manifest,
        settings=snakemake.params.settings,
        config_files=snakemake.params.config_files,
        config_sha256=snakemake.params.config_sha256,
        test_summary=optional("test"),
        validation_summary=optional("validation"),
        quality_json=optional("quality"),
        learning_curve_csv=optional("learning_curve"),
        validation_curve_csv=optional("validation_curve"),
        robustness_tables=dict(zip(snakemake.params.studies, inputs.get("robustness", []), strict=False)),
        train_log_csv=optional("history"),
    )
    if output.get("card"):  # a Namedlist's `in` looks at its values, not its names
        with atomic_path(Path(output.card)) as temporary:
            temporary.write_text(model_card(record))
    if output.get("record"):
        write_json(Path(output.record), record)


run_logged(write, snakemake.log[0])
