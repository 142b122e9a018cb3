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
from leakwatt.pipeline.repros import templates
from leakwatt.pipeline.repros.templates import ProgramSpec

PAIRS_COLUMNS = list(PAIRS.columns)
UNREPRODUCED_COLUMNS = list(UNREPRODUCED.columns)
TEMPLATE_VERSION = 1


@dataclass(frozen=True)
class PairSpec:
    pair_id: str
    smell: str
    variant_family: str
    description: str
    what_differs: str
    smelly_body: str
    clean_body: str
    model_api: str = "sequential"
    source: str = "paper"
    instances: tuple[dict[str, Any], ...] = field(default=())


_PAPER_NOTE = (
    "Re-implementation of the experiment of arXiv 2606.19799 (a CNN trained on CIFAR-10 for 50 "
    "epochs, measured with CodeCarbon). The paper published neither its code nor its "
    "architecture, batch size or injected code; everything here is leakwatt's own choice."
)

BUILTIN_PAIRS: dict[str, PairSpec] = {
    spec.pair_id: spec for spec in (
        PairSpec(
            pair_id="paper-imr", smell="IMR", variant_family="imr-epochs-rebuild-vs-clear",
            description="CNN rebuilt and recompiled every epoch in a loop (weights carried over): "
                        "without clear_session() vs with clear_session() before each rebuild",
            what_differs="clean.py calls keras.backend.clear_session() before each rebuild; "
                         "nothing else differs",
            smelly_body="imr_epochs_rebuild", clean_body="imr_epochs_clear"),
        PairSpec(
            pair_id="paper-imr-once", smell="IMR", variant_family="imr-epochs-rebuild-vs-once",
            description="CNN rebuilt and recompiled every epoch in a loop (weights carried over) "
                        "vs the model built once and fit for all epochs in one call",
            what_differs="clean.py builds and compiles the model once and calls "
                         "fit(epochs=rounds); the training (data order, optimizer steps) is the "
                         "same because SGD without momentum is stateless",
            smelly_body="imr_epochs_rebuild", clean_body="imr_epochs_once"),
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
            smelly_body="utr_tape_keep", clean_body="utr_tape_float"),
    )
}

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


def families_from_instances(instances: pd.DataFrame) -> tuple[list[PairSpec], pd.DataFrame]:
    """Group mined instances into template families; one pair per family.

    IMR: loop kind (folds/trials vs epochs and everything else) x training API (fit vs
    train_on_batch) -> ``imr-<loop>-<api>``. UTR: ``utr-tape-append``. The family's model API is
    the most common among its instances. Other rules are returned as unreproduced rows.
    """
    if "rule" not in instances.columns:
        raise LeakwattError("instances: missing column 'rule'")
    groups: dict[str, list[dict[str, Any]]] = {}
    meta: dict[str, tuple[str, str, str]] = {}
    skipped: dict[tuple[str, str, str, str], int] = Counter()
    for row in instances.to_dict("records"):
        rule = str(row.get("rule", "")).strip().upper()
        loop = _norm(row.get("loop_kind"))
        api = _norm(row.get("training_api"))
        if rule == "IMR":
            loop_family = "folds" if loop in _FOLD_KINDS else "epochs"
            api_family = "train-on-batch" if api == "train_on_batch" else "fit"
            family = f"imr-{loop_family}-{api_family}"
            meta[family] = ("IMR", loop_family, api_family)
        elif rule == "UTR":
            family = "utr-tape-append"
            meta[family] = ("UTR", "epochs", "tape")
        else:
            skipped[(rule, _norm(row.get("variant")), loop, api)] += 1
            continue
        groups.setdefault(family, []).append(row)
    specs = []
    for family in sorted(groups):
        rows = groups[family]
        rule, loop_family, api_family = meta[family]
        apis = Counter(_MODEL_API_ALIASES.get(_norm(r.get("model_api")), "sequential")
                       for r in rows)
        model_api = sorted(apis.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        refs = tuple(_instance_ref(r) for r in rows)
        if rule == "UTR":
            base = BUILTIN_PAIRS["paper-utr"]
            smelly, clean = base.smelly_body, base.clean_body
            description = (f"{len(rows)} mined UTR instance(s): tensors kept across GradientTape "
                           f"steps vs Python floats ({model_api} model)")
            differs = base.what_differs
        else:
            if loop_family == "folds":
                stem = f"imr_folds_{api_family.replace('-', '_')}"
                loop_text = "a new model per fold/trial"
            else:
                stem = ("imr_epochs_train_on_batch" if api_family == "train-on-batch"
                        else "imr_epochs")
                loop_text = "the model rebuilt every epoch (weights carried over)"
            smelly, clean = f"{stem}_rebuild", f"{stem}_clear"
            description = (f"{len(rows)} mined IMR instance(s): {loop_text}, trained with "
                           f"{api_family}, without vs with clear_session() ({model_api} model)")
            differs = "clean.py calls keras.backend.clear_session() before each rebuild"
        specs.append(PairSpec(pair_id=family, smell=rule, variant_family=family,
                              description=description, what_differs=differs,
                              smelly_body=smelly, clean_body=clean, model_api=model_api,
                              source="mined", instances=refs))
    unreproduced = pd.DataFrame(
        [{"rule": r, "variant": v, "loop_kind": lk, "training_api": ta, "instances": n,
          "reason": f"no reproduction template for rule {r or '(empty)'} yet"}
         for (r, v, lk, ta), n in sorted(skipped.items())],
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
        "architecture": templates.CNN_DESCRIPTION,
        "model_api": spec.model_api,
        "n_params": templates.CNN_PARAMS,
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
            "clean_path": f"{spec.pair_id}/clean.py"}


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
