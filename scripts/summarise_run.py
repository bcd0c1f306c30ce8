"""Rule summarise_run: run-level metrics and curves for dvc metrics / dvc plots."""

from mednca.logs import run_logged
from mednca.report.collect import Run
from mednca.report.summary import summary_stage

run_logged(
    lambda: summary_stage(
        results_dir=snakemake.params.results_dir,
        runs=[Run(dataset, model, int(seed)) for dataset, model, seed in snakemake.params.runs],
        studies=list(snakemake.params.studies),
        metrics_json=snakemake.output.metrics,
        training_csv=snakemake.output.training,
        learning_curve_csv=snakemake.output.learning_curve,
        robustness_csv=snakemake.output.robustness,
    ),
    snakemake.log[0],
)
