"""Rule build_report: every result of the run in one self-contained HTML page."""

from mednca.logs import run_logged
from mednca.report.build import report_stage
from mednca.report.collect import report_files, runs_of

runs = runs_of(snakemake.params.runs)
studies = list(snakemake.params.studies)
run_logged(
    lambda: report_stage(
        files=report_files(
            runs, studies, snakemake.input, snakemake.params.datasets, snakemake.params.benchmark_jobs
        ),
        out_html=snakemake.output[0],
        studies=studies,
        paper_results=dict(snakemake.params.paper_results),
        paper_parameters=dict(snakemake.params.paper_parameters),
        config=dict(snakemake.params.config),
        nca_runs=int(snakemake.params.nca_runs),
        repository=snakemake.params.repository,
        ablation_records=snakemake.input.ablation[0] if snakemake.input.ablation else None,
        edge_record=snakemake.input.edge[0] if snakemake.input.edge else None,
        efficiency_csv=snakemake.input.efficiency[0] if snakemake.input.efficiency else None,
    ),
    snakemake.log[0],
)
