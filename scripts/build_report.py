"""Rule build_report: every result of the run in one self-contained HTML page."""

from mednca.logs import run_logged
from mednca.report.build import build_report
from mednca.report.collect import Run

run_logged(
    lambda: build_report(
        results_dir=snakemake.params.results_dir,
        out_html=snakemake.output[0],
        runs=[Run(dataset, model, int(seed)) for dataset, model, seed in snakemake.params.runs],
        datasets=list(snakemake.params.datasets),
        studies=list(snakemake.params.studies),
        dataset_settings=dict(snakemake.params.dataset_settings),
        paper_results=dict(snakemake.params.paper_results),
        paper_parameters=dict(snakemake.params.paper_parameters),
        config=dict(snakemake.params.config),
        nca_runs=int(snakemake.params.nca_runs),
        repository=snakemake.params.repository,
        ablation_csv=snakemake.params.ablation_table,
    ),
    snakemake.log[0],
)
