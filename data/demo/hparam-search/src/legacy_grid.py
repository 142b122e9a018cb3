"""Older grid search with a hand-written training step (kept for comparison)."""

import itertools

import numpy as np
import tensorflow as tf


def grid_search(x, y, steps=200):
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(64)
    scores = {}
    for units, learning_rate in itertools.product([32, 64], [1e-3, 1e-2]):
        model = tf.keras.Sequential([
            tf.keras.Input(shape=(x.shape[1],)),
            tf.keras.layers.Dense(units, activation="relu"),
            tf.keras.layers.Dense(1),
        ])
        optimizer = tf.keras.optimizers.SGD(learning_rate)
        losses = []
        for x_batch, y_batch in dataset.take(steps):
            with tf.GradientTape() as tape:
                pred = tf.squeeze(model(x_batch), axis=-1)
                loss = tf.reduce_mean(tf.square(pred - y_batch))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            losses.append(loss)
        scores[(units, learning_rate)] = float(np.mean([l.numpy() for l in losses[-20:]]))
    return scores
