"""Rule summarise_run: run-level metrics and curves for dvc metrics / dvc plots."""

from mednca.logs import run_logged
from mednca.report.collect import run_files_from_inputs, runs_of
from mednca.report.summary import summary_stage

runs = runs_of(snakemake.params.runs)
studies = list(snakemake.params.studies)
run_logged(
    lambda: summary_stage(
        files=run_files_from_inputs(runs, studies, snakemake.input),
        studies=studies,
        metrics_json=snakemake.output.metrics,
        training_csv=snakemake.output.training,
        learning_curve_csv=snakemake.output.learning_curve,
        robustness_csv=snakemake.output.robustness,
    ),
    snakemake.log[0],
)
