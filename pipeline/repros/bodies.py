"""Training bodies of the reproduction programs: the only lines a pair's smelly.py and clean.py
do not share.

A body is the source of ``def train(keras, tf, x, y, cfg) -> (round_losses, model)``; it may call
the helpers every program defines (``build_model``, ``make_optimizer``, ``make_loss``,
``batches``, ``SEED``). :func:`leakwatt.pipeline.repros.templates.render` puts one body between
the shared header and footer. All of this is leakwatt's own code; mined code is never copied here.
"""

from __future__ import annotations

from string import Template

#: Training bodies: ``def train(keras, tf, x, y, cfg) -> (round_losses, model)``.
BODIES: dict[str, str] = {}

BODIES["imr_epochs_rebuild"] = '''\
def train(keras, tf, x, y, cfg):
    """SMELL (IMR): a new model is built and compiled every round (epoch) in a loop and
    nothing clears Keras's global state; weights are carried over so training is unchanged."""
    round_losses, weights, model = [], None, None
    for _ in range(cfg["rounds"]):
        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
        if weights is not None:
            model.set_weights(weights)
        history = model.fit(x, y, batch_size=cfg["batch_size"], epochs=1, shuffle=False,
                            verbose=0)
        weights = model.get_weights()
        round_losses.append(float(history.history["loss"][-1]))
    return round_losses, model
'''

BODIES["imr_epochs_clear"] = '''\
def train(keras, tf, x, y, cfg):
    """FIX (IMR): as the smelly loop, but keras.backend.clear_session() before every rebuild."""
    round_losses, weights, model = [], None, None
    for _ in range(cfg["rounds"]):
        keras.backend.clear_session()
        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
        if weights is not None:
            model.set_weights(weights)
        history = model.fit(x, y, batch_size=cfg["batch_size"], epochs=1, shuffle=False,
                            verbose=0)
        weights = model.get_weights()
        round_losses.append(float(history.history["loss"][-1]))
    return round_losses, model
'''

BODIES["imr_epochs_once"] = '''\
def train(keras, tf, x, y, cfg):
    """FIX (IMR): the model is built and compiled once and fit for all rounds in one call."""
    model = build_model(keras)
    model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
    history = model.fit(x, y, batch_size=cfg["batch_size"], epochs=cfg["rounds"], shuffle=False,
                        verbose=0)
    return [float(v) for v in history.history["loss"]], model
'''

_IMR_FOLDS = '''\
def train(keras, tf, x, y, cfg):
    """$doc"""
    folds = cfg["rounds"]
    fold_size = len(x) // folds
    round_losses, model = [], None
    for fold in range(folds):
$clear        keras.utils.set_random_seed(SEED + fold)
        low, high = fold * fold_size, (fold + 1) * fold_size
        keep = list(range(0, low)) + list(range(high, len(x)))
        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
$fit
        model.evaluate(x[low:high], y[low:high], verbose=0)
    return round_losses, model
'''
_FIT_FOLD = '''\
        history = model.fit(x[keep], y[keep], batch_size=cfg["batch_size"], epochs=1,
                            shuffle=False, verbose=0)
        round_losses.append(float(history.history["loss"][-1]))'''
_TOB_FOLD = '''\
        losses = [float(model.train_on_batch(xb, yb))
                  for xb, yb in batches(x[keep], y[keep], cfg["batch_size"])]
        round_losses.append(sum(losses) / len(losses))'''
_CLEAR = "        keras.backend.clear_session()\n"
for _api, _fit in (("fit", _FIT_FOLD), ("train_on_batch", _TOB_FOLD)):
    BODIES[f"imr_folds_{_api}_rebuild"] = Template(_IMR_FOLDS).substitute(
        doc="SMELL (IMR): one new model per fold/trial, built and compiled in a loop with nothing\n"
            "    clearing Keras's global state (each fold is seeded so both variants match).",
        clear="", fit=_fit)
    BODIES[f"imr_folds_{_api}_clear"] = Template(_IMR_FOLDS).substitute(
        doc="FIX (IMR): as the smelly loop, but keras.backend.clear_session() before each fold.",
        clear=_CLEAR, fit=_fit)

BODIES["imr_epochs_train_on_batch_rebuild"] = '''\
def train(keras, tf, x, y, cfg):
    """SMELL (IMR): a new model is built and compiled every round and trained batch by batch
    with train_on_batch; nothing clears Keras's global state; weights are carried over."""
    round_losses, weights, model = [], None, None
    for _ in range(cfg["rounds"]):
        model = build_model(keras)
        model.compile(optimizer=make_optimizer(keras), loss=make_loss(keras))
        if weights is not None:
            model.set_weights(weights)
        losses = [float(model.train_on_batch(xb, yb))
                  for xb, yb in batches(x, y, cfg["batch_size"])]
        weights = model.get_weights()
        round_losses.append(sum(losses) / len(losses))
    return round_losses, model
'''
BODIES["imr_epochs_train_on_batch_clear"] = BODIES["imr_epochs_train_on_batch_rebuild"].replace(
    '    """SMELL (IMR): a new model is built and compiled every round and trained batch by batch\n'
    "    with train_on_batch; nothing clears Keras's global state; weights are carried over.\"\"\"",
    '    """FIX (IMR): as the smelly loop, but keras.backend.clear_session() before each rebuild."""',
).replace("        model = build_model(keras)\n",
          "        keras.backend.clear_session()\n        model = build_model(keras)\n")

_UTR_STEP = '''\
    model = build_model(keras)
    optimizer = make_optimizer(keras)
    loss_fn = make_loss(keras)

    @tf.function
    def train_step(xb, yb):
        with tf.GradientTape() as tape:
            logits = model(xb, training=True)
            loss = loss_fn(yb, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return $returns

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(cfg["batch_size"])
'''

BODIES["utr_tape_keep"] = '''\
def train(keras, tf, x, y, cfg):
    """SMELL (UTR): a GradientTape loop that keeps every step's loss and logits tensors for the
    whole run, and every step's gradient tensors for the whole round (epoch), in Python lists."""
''' + Template(_UTR_STEP).substitute(returns="loss, logits, grads") + '''\
    all_losses, all_logits, round_losses = [], [], []
    for _ in range(cfg["rounds"]):
        round_grads = []
        first = len(all_losses)
        for xb, yb in dataset:
            loss, logits, grads = train_step(xb, yb)
            all_losses.append(loss)
            all_logits.append(logits)
            round_grads.append(grads)
        round_losses.append(tf.reduce_mean(tf.stack(all_losses[first:])))
    return [float(v) for v in round_losses], model
'''

BODIES["utr_tape_float"] = '''\
def train(keras, tf, x, y, cfg):
    """FIX (UTR): the same GradientTape loop, keeping only Python floats (float(loss)); logits
    and gradients are not kept past the step."""
''' + Template(_UTR_STEP).substitute(returns="loss") + '''\
    round_losses = []
    for _ in range(cfg["rounds"]):
        step_losses = []
        for xb, yb in dataset:
            step_losses.append(float(train_step(xb, yb)))
        round_losses.append(sum(step_losses) / len(step_losses))
    return round_losses, model
'''
