"""A custom training loop with tf.GradientTape for a small MLP classifier."""

import numpy as np
import tensorflow as tf


def make_dataset(n=1024, batch_size=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20)).astype("float32")
    y = (x[:, :5].sum(axis=1) > 0).astype("int32")
    return tf.data.Dataset.from_tensor_slices((x, y)).shuffle(n, seed=seed).batch(batch_size)


def build_model():
    return tf.keras.Sequential([
        tf.keras.Input(shape=(20,)),
        tf.keras.layers.Dense(64, activation="relu"),
        tf.keras.layers.Dense(2),
    ])


def train(model, dataset, epochs=3, learning_rate=1e-3):
    optimizer = tf.keras.optimizers.Adam(learning_rate)
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    history = []
    step = 0
    for epoch in range(epochs):
        for x_batch, y_batch in dataset:
            with tf.GradientTape() as tape:
                logits = model(x_batch, training=True)
                loss_value = loss_fn(y_batch, logits)
            grads = tape.gradient(loss_value, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            history.append(float(loss_value))
            if step % 10 == 0:
                print(f"epoch {epoch} step {step}: loss {float(loss_value):.4f}")
            step += 1
    return history


def evaluate(model, dataset):
    loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    val_losses = []
    for x_val, y_val in dataset:
        val_logits = model(x_val, training=False)
        val_losses.append(loss_fn(y_val, val_logits))
    print(f"kept {len(val_losses)} validation losses")
    return sum(float(v) for v in val_losses) / len(val_losses)


if __name__ == "__main__":
    model = build_model()
    history = train(model, make_dataset())
    print(f"final training loss {history[-1]:.4f}")
    print(f"validation loss {evaluate(model, make_dataset(seed=1)):.4f}")
