"""Pairs of reproduction programs: the paper's built-in pairs and families of mined instances.

:func:`build_pairs` renders ``OUT/<pair_id>/{smelly.py, clean.py, meta.json}`` for each pair and
writes ``OUT/pairs.csv``. Instances the templates cannot reproduce yet are listed, with the reason,
in ``OUT/unreproduced.csv`` rather than silently dropped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from leakwatt.common import LeakwattError, atomic_write_csv, atomic_write_json, atomic_write_text
from leakwatt.contracts import PAIRS, UNREPRODUCED
from leakwatt.pipeline.repros import bodies, graph_smells, process_smells, templates
from leakwatt.pipeline.repros.templates import ProgramSpec

PAIRS_COLUMNS = list(PAIRS.columns)
UNREPRODUCED_COLUMNS = list(UNREPRODUCED.columns)
TEMPLATE_VERSION = 1


FRAMEWORKS = ("keras3", "keras2", "keras2-graph")
#: levels with eager execution: GradientTape loops and direct model calls need one of these.
EAGER = ("keras3", "keras2")
DEVICES = ("cpu", "gpu")


@dataclass(frozen=True)
class PairSpec:
    """One smelly/clean pair: its bodies and what it estimates.

    ``estimand`` names what the difference between the two programs measures; analysis pools
    pairs only when they share it (``paper-imr`` and ``paper-imr-once`` do not). ``autofix``
    says whether the clean body is the rule's autofix applied to the smelly one (and if not, why
    not); ``frameworks`` and ``devices`` are the levels the pair runs under.
    """

    pair_id: str
    smell: str
    variant_family: str
    description: str
    what_differs: str
    smelly_body: str
    clean_body: str
    estimand: str
    autofix: str
    frameworks: tuple[str, ...] = FRAMEWORKS
    devices: tuple[str, ...] = DEVICES
    model_api: str = "sequential"
    source: str = "paper"
    instances: tuple[dict[str, Any], ...] = field(default=())
    #: the workload when it is not the shared CNN (a TF1 graph, a search over small models...)
    architecture: str = ""
    n_params: int = 0

    @property
    def leak_evidence(self) -> str:
        # the longest registered prefix: one smell's families may count different things
        name = self.smelly_body
        prefix = max((p for p in bodies.LEAK_EVIDENCE if name.startswith(p + "_")), key=len)
        return bodies.LEAK_EVIDENCE[prefix]

    @property
    def has_autofix(self) -> bool:
        return self.autofix.startswith("yes")


#: The US family trains a TF1 graph of its own in sessions (no Keras model).
US_ARCHITECTURE = ("softmax regression on the flattened 32x32x3 images (3072 x 10 weights + 10 "
                   "biases, 30,730 parameters) built as a tf.compat.v1 graph, plain SGD "
                   "(learning rate 0.05), one session per fold")
US_PARAMS = 30730

_PAPER_NOTE = (
    "Re-implementation of the experiment of arXiv 2606.19799 (a CNN trained on CIFAR-10 for 50 "
    "epochs, measured with CodeCarbon). The paper published neither its code nor its "
    "architecture, batch size or injected code; everything here is leakwatt's own choice."
)
_IMR_AUTOFIX = "yes: the IMR autofix inserts keras.backend.clear_session() at the top of the loop"
_NOT_THE_FIX = ("no: the IMR autofix is clear_session(); this pair measures another change "
                "(see estimand)")

BUILTIN_PAIRS: dict[str, PairSpec] = {
    spec.pair_id: spec for spec in (
        PairSpec(
            pair_id="paper-imr", smell="IMR", variant_family="imr-epochs-rebuild-vs-clear",
            description="CNN rebuilt and recompiled every epoch in a loop (weights carried over): "
                        "without clear_session() vs with clear_session() before each rebuild",
            what_differs="clean.py calls keras.backend.clear_session() before each rebuild; "
                         "nothing else differs",
            smelly_body="imr_epochs_rebuild", clean_body="imr_epochs_clear",
            estimand="imr-release-clear-session", autofix=_IMR_AUTOFIX),
        PairSpec(
            pair_id="paper-imr-del", smell="IMR", variant_family="imr-epochs-rebuild-vs-del-gc",
            description="CNN rebuilt and recompiled every epoch in a loop (weights carried over): "
                        "without releasing vs `del model` + gc.collect() before each rebuild",
            what_differs="clean.py deletes the previous model and calls gc.collect() before "
                         "each rebuild; Keras's global state is not cleared",
            smelly_body="imr_epochs_rebuild", clean_body="imr_epochs_del",
            estimand="imr-release-del-gc", autofix=_NOT_THE_FIX),
        PairSpec(
            pair_id="paper-imr-once", smell="IMR", variant_family="imr-epochs-rebuild-vs-once",
            description="CNN rebuilt and recompiled every epoch in a loop (weights carried over) "
                        "vs the model built once and fit one epoch per round",
            what_differs="clean.py builds and compiles the model once and fits it one epoch "
                         "per round; the training (data order, optimizer steps) is the same "
                         "because SGD without momentum is stateless. A different estimand from "
                         "paper-imr: the cost of rebuilding, not of not releasing",
            smelly_body="imr_epochs_rebuild", clean_body="imr_epochs_once",
            estimand="imr-rebuild-vs-once", autofix=_NOT_THE_FIX),
        PairSpec(
            pair_id="paper-imr-xla", smell="IMR", variant_family="imr-epochs-recompile-xla",
            description="CNN rebuilt and compiled with jit_compile=True every epoch (XLA "
                        "compiles it again each time) vs built and compiled once",
            what_differs="both compile with jit_compile=True; clean.py builds and compiles "
                         "once, so XLA compiles once. Meant for GPUs, where XLA compilation is "
                         "the cost (declared devices: gpu)",
            smelly_body="imr_epochs_rebuild_xla", clean_body="imr_epochs_once_xla",
            estimand="imr-recompile-xla", autofix=_NOT_THE_FIX, frameworks=EAGER,
            devices=("gpu",)),
        PairSpec(
            pair_id="paper-utr", smell="UTR", variant_family="utr-tape-keep-vs-float",
            description="GradientTape loop keeping per-step loss and logits tensors for the "
                        "whole run and gradient tensors for the whole epoch vs keeping Python "
                        "floats only",
            what_differs="smelly.py appends each step's loss, logits (whole run) and gradients "
                         "(current epoch) tensors to lists and averages the losses with "
                         "tf.reduce_mean; clean.py keeps float(loss) only. Gradients are kept "
                         "per epoch, not per run: at paper scale 39,100 steps x 122,570 float32 "
                         "gradients would need about 19 GB",
            smelly_body="utr_tape_keep", clean_body="utr_tape_float",
            estimand="utr-keep-loss-logits-grads", frameworks=EAGER,
            autofix="no: the paper's fix (keep floats only), not the UTR autofix (which "
                    "converts each stored value)"),
    )
}


@dataclass(frozen=True)
class Family:
    """A template family of mined instances: the bodies and what the pair estimates."""

    family: str
    smell: str
    smelly_body: str
    clean_body: str
    estimand: str
    summary: str
    what_differs: str
    autofix: str
    frameworks: tuple[str, ...] = FRAMEWORKS
    #: the workload when it is not the shared CNN (meta.json ``architecture``/``n_params``)
    architecture: str = ""
    n_params: int = 0


def _imr_family(loop: str, api: str) -> Family:
    stem = (f"imr_folds_{api.replace('-', '_')}" if loop == "folds" else
            "imr_epochs_train_on_batch" if api == "train-on-batch" else "imr_epochs")
    text = ("a new model per fold/trial" if loop == "folds"
            else "the model rebuilt every epoch (weights carried over)")
    return Family(f"imr-{loop}-{api}", "IMR", f"{stem}_rebuild", f"{stem}_clear",
                  "imr-release-clear-session", f"{text}, trained with {api}, without vs with "
                  "clear_session()",
                  "clean.py calls keras.backend.clear_session() at the top of each iteration",
                  _IMR_AUTOFIX)


_UTR_TEXT = {
    "append-loss": "each step's loss tensor appended to a list",
    "append-output": "each step's model output appended to a list",
    "append-gradients": "each step's gradient tensors appended to a list",
    "append-metric": "each step's metric result tensor appended to a list",
    "append-tensor": "each step's input batch tensor appended to a list",
    "dict-store": "each step's loss tensor stored in a dict under the step",
}
_UTR_FIX = "yes: the UTR autofix converts the stored value (float(...) or .numpy())"

FAMILIES: dict[str, Family] = {f.family: f for f in (
    *(_imr_family(loop, api) for loop in ("epochs", "folds") for api in ("fit", "train-on-batch")),
    *(Family(f"utr-{v}", "UTR", f"utr_{v.replace('-', '_')}_keep",
             f"utr_{v.replace('-', '_')}_fixed", f"utr-{v}-convert",
             f"GradientTape loop, {text}, vs the value converted at the store",
             "clean.py stores the value converted to Python/NumPy (the rule's autofix); "
             "nothing else differs", _UTR_FIX, frameworks=EAGER)
      for v, text in _UTR_TEXT.items()),
    Family("dir-predict-on-batch", "DIR", "dir_predict_predict", "dir_predict_on_batch",
           "dir-predict-vs-predict-on-batch",
           "model.predict per sample in a loop vs model.predict_on_batch per sample",
           "clean.py calls predict_on_batch (the rule's autofix); nothing else differs",
           "yes: the DIR autofix turns predict(x) into predict_on_batch(x)"),
    Family("dir-predict-batched", "DIR", "dir_predict_predict", "dir_predict_batched",
           "dir-predict-vs-one-batched-predict",
           "model.predict per sample in a loop vs one batched predict call",
           "clean.py predicts every round's samples in one model.predict call before the loop",
           "no: the DIR autofix is predict_on_batch; this pair measures batching"),
    Family("dir-predict-call", "DIR", "dir_predict_predict", "dir_predict_call",
           "dir-predict-vs-call",
           "model.predict per sample in a loop vs calling the model, model(x, training=False)",
           "clean.py calls the model directly per sample (eager only)",
           "no: the DIR autofix is predict_on_batch (model(x) returns a tensor, not NumPy)",
           frameworks=EAGER),
    Family("dir-dataset-loop", "DIR", "dir_dataset_loop", "dir_dataset_once",
           "dir-dataset-per-round-vs-once",
           "tf.data pipeline rebuilt every epoch in the loop vs built once before it",
           "clean.py builds the pipeline once before the loop",
           "no: the DIR rule has no autofix for datasets built in a loop"),
    Family("us-session-with", "US", "us_session_no_close", "us_session_with",
           "us-no-close-vs-with",
           "TF1-compat session per fold never closed vs the same session in a `with` block",
           "clean.py opens each fold's session in a `with` block (the rule's autofix)",
           "yes: the US autofix turns `sess = Session()` and the rest of its block into a "
           "`with` block", architecture=US_ARCHITECTURE, n_params=US_PARAMS),
)}
#: issue 14's catalogue families, defined beside their bodies (graph_smells: UGE, GCB;
#: process_smells: UP, US session-in-loop)
FAMILIES.update({spec["family"]: Family(**spec)
                 for module in (graph_smells, process_smells) for spec in module.FAMILY_SPECS})

#: (rule, variant) -> the families that reproduce it. Every variant a rule reports and is not
#: listed here goes to unreproduced.csv with the reason (tests/test_repros_mapping.py scans the
#: rules' own INVALID examples, so a new variant is noticed).
_DIR_PREDICT = ("dir-predict-on-batch", "dir-predict-batched", "dir-predict-call")
VARIANT_FAMILIES: dict[tuple[str, str], tuple[str, ...]] = {
    **{("UTR", v): (f"utr-{v}",) for v in _UTR_TEXT},
    ("DIR", "predict-in-loop"): _DIR_PREDICT,
    ("DIR", "predict-in-called-fn"): _DIR_PREDICT,
    ("DIR", "predict-in-inference-fn"): _DIR_PREDICT,
    ("DIR", "dataset-in-loop"): ("dir-dataset-loop",),
    ("DIR", "dataset-in-called-fn"): ("dir-dataset-loop",),
    ("US", "session-no-close"): ("us-session-with",),
    ("US", "session-close-conditional"): ("us-session-with",),
    ("US", "session-as-default"): ("us-session-with",),
    **graph_smells.VARIANT_FAMILIES,
    **process_smells.VARIANT_FAMILIES,
}
#: IMR variants that build one model per fold/trial (a fresh start each time).
_FOLD_VARIANTS = {"kfold", "search-objective", "build-fn"}
#: Every IMR variant: its family depends on the loop (folds vs epochs) and the training API.
IMR_VARIANTS = {"loop-fit", "loop-build", "kfold", "builder-in-loop", "called-in-loop",
                "search-objective", "build-fn", "straight-line", "request-handler"}
_FOLD_KINDS = {"fold", "folds", "kfold", "k-fold", "cv", "cross_validation", "trial", "trials",
               "hyperparameter", "hyperparameters", "grid", "search", "tuning", "models",
               "ensemble"}
_MODEL_API_ALIASES = {"sequential": "sequential", "functional": "functional", "model": "functional",
                      "subclass": "subclass", "subclassed": "subclass", "subclassing": "subclass"}


def _norm(value: Any) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return str(value).strip().lower().replace(" ", "_")


def _instance_ref(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("repo", "commit", "path", "line", "rule", "variant", "loop_kind", "model_api",
            "training_api")
    out: dict[str, Any] = {}
    for key in keep:
        if key in row and not (isinstance(row[key], float) and pd.isna(row[key])):
            value = row[key]
            out[key] = value.item() if hasattr(value, "item") else value
    return out


def families_of(rule: str, variant: str, loop_kind: str = "", training_api: str = ""
                ) -> tuple[tuple[str, ...], str]:
    """The families reproducing one instance, or ``((), reason)`` when none does.

    IMR: the rule's ``variant`` says k-fold/search (``kfold``, ``search-objective``,
    ``build-fn``; or a ``loop_kind`` such as ``folds``) -> ``imr-folds-*``, anything else ->
    ``imr-epochs-*``; ``training_api`` ``train_on_batch`` -> ``*-train-on-batch``, else
    ``*-fit``. Other rules: :data:`VARIANT_FAMILIES`.
    """
    rule = str(rule).strip().upper()
    variant = _norm(variant).replace("_", "-")
    if rule == "IMR" and (variant in IMR_VARIANTS or not variant):
        loop = "folds" if variant in _FOLD_VARIANTS or _norm(loop_kind) in _FOLD_KINDS \
            else "epochs"
        api = "train-on-batch" if _norm(training_api) == "train_on_batch" else "fit"
        return (f"imr-{loop}-{api}",), ""
    families = VARIANT_FAMILIES.get((rule, variant))
    if families:
        return families, ""
    if rule not in {r for r, _ in VARIANT_FAMILIES} | {"IMR"}:
        return (), f"no reproduction template for rule {rule or '(empty)'} yet"
    return (), f"no reproduction template for variant {variant or '(empty)'} of rule {rule} yet"


def families_from_instances(instances: pd.DataFrame) -> tuple[list[PairSpec], pd.DataFrame]:
    """Group mined instances into template families; one pair per family.

    See :func:`families_of` for the mapping. The family's model API is the most common among
    its instances. Instances no family covers are returned as unreproduced rows with the reason.
    """
    if "rule" not in instances.columns:
        raise LeakwattError("instances: missing column 'rule'")
    groups: dict[str, list[dict[str, Any]]] = {}
    skipped: dict[tuple[str, str, str, str, str], int] = Counter()
    for row in instances.to_dict("records"):
        rule = str(row.get("rule", "")).strip().upper()
        loop, api = _norm(row.get("loop_kind")), _norm(row.get("training_api"))
        families, reason = families_of(rule, _norm(row.get("variant")), loop, api)
        if not families:
            skipped[(rule, _norm(row.get("variant")), loop, api, reason)] += 1
        for family in families:
            groups.setdefault(family, []).append(row)
    specs = []
    for family_id in sorted(groups):
        rows = groups[family_id]
        family = FAMILIES[family_id]
        apis = Counter(_MODEL_API_ALIASES.get(_norm(r.get("model_api")), "sequential")
                       for r in rows)
        model_api = sorted(apis.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        if family.architecture:
            model_api = "sequential"  # the body trains its own workload, not the shared CNN
        description = (f"{len(rows)} mined {family.smell} instance(s): {family.summary} "
                       f"({model_api} model)")
        specs.append(PairSpec(
            pair_id=family_id, smell=family.smell, variant_family=family_id,
            description=description, what_differs=family.what_differs,
            smelly_body=family.smelly_body, clean_body=family.clean_body,
            estimand=family.estimand, autofix=family.autofix, frameworks=family.frameworks,
            model_api=model_api, source="mined", instances=tuple(_instance_ref(r) for r in rows),
            architecture=family.architecture, n_params=family.n_params))
    unreproduced = pd.DataFrame(
        [{"rule": r, "variant": v, "loop_kind": lk, "training_api": ta, "instances": n,
          "reason": reason}
         for (r, v, lk, ta, reason), n in sorted(skipped.items())],
        columns=UNREPRODUCED_COLUMNS)
    return specs, unreproduced


def _meta(spec: PairSpec, scale: str) -> dict[str, Any]:
    return {
        "pair_id": spec.pair_id,
        "smell": spec.smell,
        "variant_family": spec.variant_family,
        "source": spec.source,
        "reimplementation": True,
        "note": (_PAPER_NOTE if spec.source == "paper" else
                 "Re-implementation of a family of mined instances with leakwatt's own CNN "
                 "template; the mined code itself is never copied or run."),
        "description": spec.description,
        "what_differs": spec.what_differs,
        "estimand": spec.estimand,
        "leak_evidence": spec.leak_evidence,
        "frameworks": list(spec.frameworks),
        "devices": list(spec.devices),
        "autofix": spec.autofix,
        "work_counters": list(bodies.WORK_KEYS),
        "architecture": spec.architecture or templates.CNN_DESCRIPTION,
        "model_api": spec.model_api,
        "n_params": spec.n_params or templates.CNN_PARAMS,
        "data": {
            "kind": "synthetic CIFAR-10-shaped (seeded class prototypes + Gaussian noise); real "
                    f"CIFAR-10 when --data or ${templates.DATA_ENV} names a local .npz with "
                    "x_train/y_train",
            "input_shape": [32, 32, 3], "classes": 10,
        },
        "scales": templates.SCALES,
        "scale": scale,
        "seed": templates.SEED,
        "learning_rate": templates.LEARNING_RATE,
        "bodies": {"smelly": spec.smelly_body, "clean": spec.clean_body},
        "template_version": TEMPLATE_VERSION,
        "instances": list(spec.instances),
    }


def _write_pair(out_dir: Path, spec: PairSpec, scale: str) -> dict[str, Any]:
    pair_dir = out_dir / spec.pair_id
    for variant, body in (("smelly", spec.smelly_body), ("clean", spec.clean_body)):
        source = templates.render(ProgramSpec(pair_id=spec.pair_id, variant=variant, body=body,
                                              model_api=spec.model_api,
                                              summary=spec.description))
        atomic_write_text(pair_dir / f"{variant}.py", source)
    atomic_write_json(pair_dir / "meta.json", _meta(spec, scale))
    return {"pair_id": spec.pair_id, "smell": spec.smell, "variant_family": spec.variant_family,
            "description": spec.description, "scale": scale, "instances": len(spec.instances),
            "source": spec.source, "smelly_path": f"{spec.pair_id}/smelly.py",
            "clean_path": f"{spec.pair_id}/clean.py", "estimand": spec.estimand,
            "frameworks": ";".join(spec.frameworks), "devices": ";".join(spec.devices),
            "autofix": "yes" if spec.has_autofix else "no", "status": "built",
            "status_reason": ""}


def build_pairs(out_dir: Path, pair_ids: Sequence[str], scale: str,
                instances: pd.DataFrame | None = None) -> pd.DataFrame:
    """Write the built-in pairs named in ``pair_ids`` (and, given ``instances``, one pair per
    mined family) into ``out_dir`` with ``pairs.csv``; return the pairs table."""
    out_dir = Path(out_dir)
    if scale not in templates.SCALES:
        raise LeakwattError(f"scale {scale!r} is not one of {', '.join(templates.SCALES)}")
    unknown = [p for p in pair_ids if p not in BUILTIN_PAIRS]
    if unknown:
        raise LeakwattError(f"unknown built-in pair {unknown[0]!r} "
                            f"(known: {', '.join(BUILTIN_PAIRS)})")
    specs = [BUILTIN_PAIRS[p] for p in dict.fromkeys(pair_ids)]
    unreproduced = None
    if instances is not None:
        mined, unreproduced = families_from_instances(instances)
        specs += mined
    if not specs:
        raise LeakwattError("no pairs to build: no built-in pair named and no reproducible "
                            "instance given")
    rows = [_write_pair(out_dir, spec, scale) for spec in specs]
    table = pd.DataFrame(rows, columns=PAIRS_COLUMNS)
    if unreproduced is not None:
        atomic_write_csv(out_dir / "unreproduced.csv", unreproduced, columns=UNREPRODUCED_COLUMNS)
    atomic_write_csv(out_dir / "pairs.csv", table, columns=PAIRS_COLUMNS)
    return table


def read_pairs(pairs_dir: Path) -> pd.DataFrame:
    """Read and check ``pairs_dir/pairs.csv``; program paths are made absolute."""
    path = Path(pairs_dir) / "pairs.csv"
    if not path.is_file():
        raise LeakwattError(f"{path}: not found (run `leakwatt reproduce` first)")
    try:
        table = pd.read_csv(path, dtype={"pair_id": str, "smell": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise LeakwattError(f"{path}: unreadable CSV ({exc})") from None
    PAIRS.validate(table, str(path))
    if table["pair_id"].duplicated().any():
        dup = table.loc[table["pair_id"].duplicated(), "pair_id"].iloc[0]
        raise LeakwattError(f"{path}: duplicate pair_id {dup!r}")
    for i, row in table.iterrows():
        for col in ("smelly_path", "clean_path"):
            program = Path(pairs_dir) / str(row[col])
            if not program.is_file():
                raise LeakwattError(f"{path}: row {i + 2}: {col} {row[col]!r} does not exist")
            table.at[i, col] = str(program.resolve())
    return table


def pair_meta(pairs_dir: Path, pair_id: str) -> dict[str, Any]:
    path = Path(pairs_dir) / pair_id / "meta.json"
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return {}
