"""The ``mednca`` command: each pipeline stage, usable outside Snakemake."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from mednca.config import SCHEMA_PATH, schema_default
from mednca.errors import MednCAError
from mednca.logs import configure_logging, run_reported
from mednca.names import MODEL_NAMES

log = logging.getLogger("mednca")


def _comma_list(text: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of names, got '{text}'")
    return items


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(item) for item in _comma_list(text))
    except (ValueError, argparse.ArgumentTypeError) as error:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got '{text}'") from error
    if any(value < 0 for value in values):
        raise argparse.ArgumentTypeError(f"expected integers of 0 or more, got '{text}'")
    return values


def _integer_from(minimum: int):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from error
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


_positive = _integer_from(1)
_natural = _integer_from(0)


def _inputs(args: argparse.Namespace, *names: str) -> list[Path]:
    """The paths given in the named arguments that are set (single paths or lists)."""
    paths = []
    for name in names:
        value = getattr(args, name)
        paths += (
            [Path(v) for v in value] if isinstance(value, list) else [] if value is None else [Path(value)]
        )
    return paths


def cmd_validate(args: argparse.Namespace) -> int:
    """Check a dataset folder; print one line per problem; 0 only if every case is clean."""
    from mednca.data.layout import detect_layout, discover
    from mednca.data.validate import validate_dataset
    from mednca.errors import DataError

    folder = Path(args.path)
    try:
        layout = args.layout or detect_layout(folder)
        discovery = discover(folder, layout, args.modalities, args.sequences)
        report = validate_dataset(discovery, progress=args.progress)
    except MednCAError:
        raise
    except MemoryError as error:
        raise DataError(f"{folder}: not enough memory to validate the dataset") from error
    except OSError as error:
        where = error.filename or folder
        raise DataError(f"{where}: cannot read ({error.strerror or type(error).__name__})") from error
    except Exception as error:  # last resort: one line, never a traceback, for whatever input
        reason = " ".join(str(error).split()) or "no details"
        raise DataError(
            f"{folder}: validation stopped on an unexpected {type(error).__name__} ({reason}); "
            "please report this with the file that caused it"
        ) from error
    for problem in report.problems:
        print(" ".join(str(problem).splitlines()))
    bad_cases = {p.case_id for p in report.problems}
    listed = ""
    if discovery.listed_cases is not None:
        listed = (
            f"dataset.json lists {discovery.listed_cases} case(s), {discovery.found_cases} found on disk, "
        )
    print(
        f"{layout} dataset {discovery.root}: {listed}{len(report.records)} valid case(s), "
        f"{len(report.problems)} problem(s) in {len(bad_cases)} case(s)",
        file=sys.stderr,
    )
    return 1 if report.problems else 0


def cmd_phantom(args: argparse.Namespace) -> int:
    """Write a synthetic MSD-layout dataset."""
    from mednca.data.phantom import generate_phantom_dataset

    try:
        out = generate_phantom_dataset(
            Path(args.out_dir),
            n_cases=args.cases,
            seed=args.seed,
            shape=tuple(args.shape),
            shape_jitter=args.shape_jitter,
            n_modalities=args.modalities,
            progress=True,
        )
    except (ValueError, FileExistsError) as error:
        raise MednCAError(str(error)) from error
    print(out)
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    """Make a dataset folder available under DATA_DIR: use it, extract its archive or download it."""
    from mednca.data.download import fetch_dataset

    result = fetch_dataset(Path(args.data_dir), args.folder, archive=args.archive, url=args.url, md5=args.md5)
    print(f"{result.folder} ({result.origin})")
    return 0


DEFAULT_SCHEMA = SCHEMA_PATH
# The paper configuration of a source checkout (an editable install); an installed package has none, and
# the files given with --config are then merged over the schema's defaults alone.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "config.yaml"


def load_config(files: list[str], schema: Path) -> dict:
    """The default config with each file merged over it in turn, as the workflow's --configfile does."""
    from snakemake.utils import update_config

    from mednca.config import load_yaml, validate_config

    config = load_yaml(DEFAULT_CONFIG) if DEFAULT_CONFIG.is_file() else {}
    for path in files:
        overrides = load_yaml(Path(path)) or {}
        if not isinstance(overrides, dict):
            raise MednCAError(
                f"{path}: a config file must map keys to values, it holds a {type(overrides).__name__}"
            )
        update_config(config, overrides)
    return validate_config(config, schema)


def cmd_config(args: argparse.Namespace) -> int:
    """Write the effective config: config/config.yaml, the given files merged over it, defaults filled."""
    import yaml

    from mednca.io import atomic_path, check_output

    if args.output is not None:
        check_output(Path(args.output), _inputs(args, "config"))
    text = yaml.safe_dump(load_config(args.config, Path(args.schema)), sort_keys=True)
    if args.output is None:
        print(text, end="")
        return 0
    with atomic_path(Path(args.output)) as temporary:
        temporary.write_text(text)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    """Train one model on a dataset's preprocessed train split, with the settings of a config file."""
    from mednca.data.preprocessing import Preprocessing
    from mednca.io import check_output
    from mednca.train.loop import CHECKPOINT_NAME, TrainingSettings
    from mednca.train.stages import outputs_beside, train_stage

    data, output = Path(args.data), Path(args.output)
    inputs = [data / "manifest.csv", *_inputs(args, "config", "init_model")]
    outputs = outputs_beside(output)
    for path in (output, output.parent / CHECKPOINT_NAME, outputs["summary_json"], outputs["history_csv"]):
        check_output(path, inputs)
    config = load_config(args.config, Path(args.schema))
    dataset = args.dataset or data.name
    if dataset not in config["dataset_settings"]:
        raise MednCAError(f"no dataset_settings for '{dataset}' in the config (pass --dataset or --config)")
    model = config["model_settings"][args.model]
    training = model["training"] if args.epochs is None else {**model["training"], "epochs": args.epochs}
    train_stage(
        slices_dir=data / "slices",
        manifest_csv=data / "manifest.csv",
        model_path=Path(args.output),
        model_name=args.model,
        arguments=model["architecture"],
        settings=TrainingSettings.from_config(training),
        seed=args.seed,
        preprocessing=Preprocessing.from_settings(config["dataset_settings"][dataset]),
        device_name=args.device,
        max_cases=args.max_cases,
        init_model=None if args.init_model is None else Path(args.init_model),
        **outputs,
    )
    print(args.output)
    return 0


EVALUATE_DESCRIPTION = """\
Score a trained model file on labelled images, in two forms:

  mednca evaluate MODEL DATA OUT_DIR
      the test split of a data-stage folder (as the workflow's evaluation): writes OUT_DIR/per_case.csv,
      summary.json, test_slices.npz and predictions/.

  mednca evaluate MODEL --images DIR --labels DIR --output DIR
      any folder of labelled images. A label X.nii.gz (or X.nii) in --labels belongs to case X of --images:
      a file X.nii.gz, nnU-Net channel files X_0000.nii.gz, X_0001.nii.gz ..., or a case folder X/ (its
      sequence files for a BraTS model, else its NIfTI files by name). Each case is segmented as
      `mednca predict` does and scored against its label in the label's voxel grid. Writes
      per_case.csv, summary.json and predictions/<label file name>. A case that cannot be scored is
      reported in one line and the others are still scored; exit status 1 if any case failed, 2 if
      the folders cannot be used or no case could be scored.
"""


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate a model file on a dataset's test split (MODEL DATA OUT_DIR) or on any folder of labelled
    images (MODEL --images DIR --labels DIR --output DIR); the second form exits 1 if any case failed."""
    folders = {"--images": args.images, "--labels": args.labels, "--output": args.output}
    if any(value is not None for value in folders.values()):
        missing = [name for name, value in folders.items() if value is None]
        if missing or args.data is not None or args.out_dir is not None:
            args.usage_error(
                "give either DATA OUT_DIR or all of --images, --labels and --output"
                + (f" (missing {', '.join(missing)})" if missing else ", not both")
            )
        from mednca.evaluate.external import evaluate_folders

        result = evaluate_folders(
            model_path=_model(args.model),
            images_dir=Path(args.images),
            labels_dir=Path(args.labels),
            output_dir=Path(args.output),
            seed=args.seed,
            device_name=args.device,
            batch_size=args.batch_size,
            runs=args.runs,
        )
        print(result.line())
        return 1 if result.failures else 0
    if args.data is None or args.out_dir is None:
        args.usage_error("give DATA and OUT_DIR, or --images DIR --labels DIR --output DIR")
    from mednca.evaluate.evaluation import evaluate_stage

    data, out = Path(args.data), Path(args.out_dir)
    evaluate_stage(
        model_path=_model(args.model),
        manifest_csv=data / "manifest.csv",
        cases_csv=data / "cases.csv",
        source_json=data / "source.json",
        per_case_csv=out / "per_case.csv",
        summary_json=out / "summary.json",
        slices_npz=out / "test_slices.npz",
        predictions_dir=out / "predictions",
        seed=args.seed,
        device_name=args.device,
        batch_size=args.batch_size,
        nca_runs=args.runs,
    )
    print(out / "summary.json")
    return 0


def _model(given: str) -> Path:
    """A ``--model`` argument as a file: a path, or the name of a shipped model."""
    from mednca.shipped import resolve_model

    return resolve_model(given)


def cmd_export(args: argparse.Namespace) -> int:
    """Export a model (file or shipped name) to ONNX or TorchScript with its preprocessing."""
    from mednca.export import export_model

    print(export_model(_model(args.model), Path(args.output), args.format))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List the models shipped inside the package with their card's summary."""
    from mednca.shipped import shipped_models

    models = shipped_models()
    for model in models.values():
        print(model.summary())
    if not models:
        print("no shipped model is installed; train one with the workflow and add it with `mednca ship`")
    return 0


def cmd_ship(args: argparse.Namespace) -> int:
    """Copy a trained run of a results folder into the package as a shipped model."""
    from mednca.shipped import ship_model

    run = Path(args.results) / "models" / args.dataset / args.model / f"seed{args.seed}"
    record = Path(args.results) / "records" / args.dataset / args.model / f"seed{args.seed}.json"
    data_dir = Path(args.results) / "data" / args.dataset
    target = ship_model(run / "model.pt", record, run / "model_card.md", args.name, data_dir)
    print(target)
    return 0


def _names_a_folder(output: str) -> bool:
    """Whether ``--output`` names a folder of label maps rather than one label map: an existing folder
    (unless named like a NIfTI file), a path ending in '/', or a new path without any suffix ('out')."""
    path = Path(output)
    if not output or path.name.lower().endswith((".nii", ".nii.gz")):
        return False
    return path.is_dir() or output.endswith(("/", "\\")) or (not path.exists() and not path.suffix)


def cmd_predict(args: argparse.Namespace) -> int:
    """Segment one volume (``--output X.nii.gz``) or every case of files, folders and globs (``--output``
    a folder); the second form exits 1 if any case failed."""
    output = Path(args.output)
    if _names_a_folder(args.output):
        from mednca.evaluate.batch import predict_cases

        result = predict_cases(
            _model(args.model),
            list(args.input),
            output,
            args.device,
            args.seed,
            args.runs,
            args.probabilities,
        )
        print(result.line())
        return 1 if result.failures else 0
    if args.probabilities:
        args.usage_error("--probabilities writes one map per case into an output folder; give a folder")
    from mednca.evaluate.predict import predict_file

    inputs = [Path(p) for p in args.input]
    predict_file(_model(args.model), inputs, output, args.device, args.seed, args.runs)
    print(args.output)
    return 0


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line that names the argument (its subcommands too)."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def cmd_records(args: argparse.Namespace) -> int:
    """Collect a results folder's run records into records/, or render (or check) the documents from them."""
    from mednca import documents
    from mednca.io import atomic_path

    root = Path(args.root)
    if args.action == "collect":
        if not args.name:
            args.usage_error("collect needs --name, the collection's folder under records/")
        written = documents.collect_records(Path(args.results), args.name, root / documents.RECORDS_DIR)
        print(f"{len(written)} record(s) in {root / documents.RECORDS_DIR / args.name}")
        return 0
    if args.action == "check":
        stale = documents.stale_documents(root)
        for path in stale:
            print(f"{path}: differs from its rendering from records/; run `mednca records render`")
        return 1 if stale else 0
    for path, text in documents.render_documents(root).items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as temporary:
            temporary.write_text(text)
        print(target)
    return 0


def _version() -> str:
    """The installed package's version (from its metadata, the one place it is written: pyproject.toml)."""
    from importlib import metadata

    try:
        return metadata.version("mednca")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = OneLineParser(prog="mednca", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mednca {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check an MSD- or BraTS-layout dataset folder")
    validate.add_argument(
        "path", help="dataset folder (MSD: with dataset.json; BraTS: with the case folders)"
    )
    validate.add_argument("--layout", choices=["msd", "brats"], help="default: detected from the folder")
    validate.add_argument(
        "--modalities",
        type=_int_list,
        default=tuple(schema_default("dataset_settings.*.modalities")),
        help="MSD: channels of 4D images to check, e.g. 0,1 (default: %(default)s)",
    )
    validate.add_argument(
        "--sequences",
        type=_comma_list,
        default=tuple(schema_default("dataset_settings.*.sequences")),
        help="BraTS: sequences every case must have, e.g. t1,t1ce,t2,flair (default: %(default)s)",
    )
    validate.add_argument("--progress", action="store_true", help="show a progress bar")
    validate.set_defaults(handler=cmd_validate)

    phantom = commands.add_parser("phantom", help="write a synthetic MSD-layout phantom dataset")
    phantom.add_argument("out_dir")
    synthetic = schema_default("dataset_settings.*.synthetic")
    phantom.add_argument("--cases", type=_positive, default=10)  # the schema requires it, has no default
    phantom.add_argument("--seed", type=_natural, default=synthetic["seed"])
    phantom.add_argument(
        "--shape", type=_positive, nargs=3, default=tuple(synthetic["shape"]), metavar=("X", "Y", "Z")
    )
    phantom.add_argument("--shape-jitter", type=_natural, default=synthetic["shape_jitter"])
    phantom.add_argument("--modalities", type=_positive, default=synthetic["modalities"])
    phantom.set_defaults(handler=cmd_phantom)

    fetch = commands.add_parser("fetch", help="use, extract or download a dataset into DATA_DIR/FOLDER")
    fetch.add_argument("data_dir")
    fetch.add_argument("folder")
    fetch.add_argument("--archive", help="archive file name under DATA_DIR")
    fetch.add_argument("--url", help="where to download the archive from")
    fetch.add_argument("--md5", help="expected md5 of the archive")
    fetch.set_defaults(handler=cmd_fetch)

    config_help = "config file merged over config/config.yaml, as snakemake --configfile (repeatable)"
    config = commands.add_parser(
        "config", help="print or write the effective configuration (defaults filled)"
    )
    config.add_argument("--config", action="append", default=[], help=config_help)
    config.add_argument("--output", help="file to write (default: print)")
    config.add_argument("--schema", default=str(DEFAULT_SCHEMA), help=argparse.SUPPRESS)
    config.set_defaults(handler=cmd_config)

    data_help = "data-stage folder of a dataset, e.g. results/data/hippocampus (slices/, manifest.csv, ...)"
    train = commands.add_parser("train", help="train a model on a dataset's preprocessed train split")
    train.add_argument("data", help=data_help)
    train.add_argument("output", help="model file to write, e.g. model.pt")
    train.add_argument("--model", required=True, choices=list(MODEL_NAMES))
    train.add_argument(
        "--config",
        action="append",
        default=[],
        help=config_help,
    )
    train.add_argument("--schema", default=str(DEFAULT_SCHEMA), help=argparse.SUPPRESS)
    train.add_argument("--dataset", help="dataset name in the config (default: the data folder's name)")
    train.add_argument("--epochs", type=_positive, help="override the configured number of epochs")
    train.add_argument("--seed", type=_natural, default=0)
    train.add_argument("--max-cases", type=_positive, help="train on this many training cases only")
    train.add_argument("--init-model", help="model file to fine-tune instead of starting from scratch")
    train.add_argument("--device", default=schema_default("device"))
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a model file on a dataset's test split or on any folder of labelled images",
        usage="%(prog)s MODEL DATA OUT_DIR [options]\n"
        "       %(prog)s MODEL --images DIR --labels DIR --output DIR [options]",
        description=EVALUATE_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    evaluate.add_argument("model", metavar="MODEL", help="model file (model.pt) or a shipped model's name")
    evaluate.add_argument("data", metavar="DATA", nargs="?", help=f"first form: {data_help}")
    evaluate.add_argument(
        "out_dir",
        metavar="OUT_DIR",
        nargs="?",
        help="first form: folder for per_case.csv, summary.json, test_slices.npz and predictions/",
    )
    evaluate.add_argument(
        "--images",
        metavar="DIR",
        help="second form: images, one per case: X.nii.gz, channel files X_0000.nii.gz X_0001.nii.gz ..., "
        "or a case folder X/",
    )
    evaluate.add_argument("--labels", metavar="DIR", help="second form: label maps X.nii.gz (or X.nii)")
    evaluate.add_argument(
        "--output",
        metavar="DIR",
        help="second form: folder for per_case.csv, summary.json and predictions/ (not inside the inputs)",
    )
    evaluate.add_argument("--seed", type=_natural, default=0, help="seed of the NCA's random cell updates")
    evaluate.add_argument("--device", default=schema_default("device"))
    evaluate.add_argument("--batch-size", type=_positive, default=schema_default("evaluation.batch_size"))
    evaluate.add_argument(
        "--runs",
        type=_positive,
        default=schema_default("evaluation.nca_runs"),
        help="runs averaged for NCAs (gives the NQM; default: %(default)s)",
    )
    evaluate.set_defaults(handler=cmd_evaluate, usage_error=evaluate.error)

    export = commands.add_parser(
        "export", help="export a model to ONNX (run by ONNX Runtime) or TorchScript, with its preprocessing"
    )
    export.add_argument("--model", required=True, help="model file (model.pt) or a shipped model's name")
    export.add_argument("--format", required=True, choices=["onnx", "torchscript"])
    export.add_argument("--output", required=True, help="file to write (e.g. model.onnx)")
    export.set_defaults(handler=cmd_export)

    models = commands.add_parser("models", help="list the models shipped inside the package")
    models.set_defaults(handler=cmd_models)

    ship = commands.add_parser(
        "ship", help="add a trained run of a results folder to the package's shipped models (NCAs only)"
    )
    ship.add_argument("--results", default="results", help="the workflow's results folder")
    ship.add_argument("--dataset", required=True)
    ship.add_argument("--model", required=True, choices=list(MODEL_NAMES))
    ship.add_argument("--seed", type=_natural, default=0)
    ship.add_argument("--name", required=True, help="the name users give as --model, e.g. hippocampus")
    ship.set_defaults(handler=cmd_ship)

    records = commands.add_parser(
        "records",
        help="collect run records into records/ and render docs/results.md and the README's table from them",
    )
    records.add_argument(
        "action",
        choices=["collect", "render", "check"],
        help="collect: copy RESULTS/records/ into records/NAME/; render: write the documents; check: exit 1 "
        "if a committed document differs from its rendering",
    )
    records.add_argument("--results", default="results", help="results folder to collect from")
    records.add_argument("--name", help="collection name for collect, e.g. hippocampus_cpu")
    records.add_argument("--root", default=".", help="the project folder (default: the current folder)")
    records.set_defaults(handler=cmd_records, usage_error=records.error)

    predict = commands.add_parser(
        "predict",
        help="segment NIfTI volumes with a trained model file: one case, or every case of folders and globs",
    )
    predict.add_argument(
        "--model", required=True, help="model file (model.pt), or the name of a shipped model (mednca models)"
    )
    predict.add_argument(
        "--input",
        required=True,
        nargs="+",
        help="with --output X.nii.gz: one case, as an image file, one 3D file per channel in training order, "
        "or for a BraTS model a case folder or its *_{sequence}.nii.gz files in any order; with --output a "
        "folder: files, folders and glob patterns of many cases (X.nii.gz, channel files X_0000.nii.gz "
        "..., case folders X/)",
    )
    predict.add_argument(
        "--output",
        required=True,
        help="label map to write (.nii.gz or .nii), or a folder (an existing one, or a new path without a "
        "suffix): one label map per case with its input's file name, and predictions.csv",
    )
    predict.add_argument(
        "--probabilities",
        action="store_true",
        help="with an output folder, also write each case's foreground probability map "
        "({case}_probability.nii.gz)",
    )
    predict.add_argument("--seed", type=_natural, default=0, help="seed of the NCA's random cell updates")
    predict.add_argument(
        "--runs",
        type=_positive,
        default=schema_default("evaluation.nca_runs"),
        help="NCA runs averaged (the NQM is logged; default: %(default)s, as in evaluation)",
    )
    predict.add_argument("--device", default=schema_default("device"))
    predict.set_defaults(handler=cmd_predict, usage_error=predict.error)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``mednca`` console script."""
    args = build_parser().parse_args(argv)
    configure_logging()
    return run_reported(lambda: args.handler(args), failure_status=2)


if __name__ == "__main__":
    sys.exit(main())
