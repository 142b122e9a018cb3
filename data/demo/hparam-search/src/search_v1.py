"""Tabular regression with a configurable Keras model."""

import numpy as np
from tensorflow import keras


def load_table(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 8)).astype("float32")
    y = (x @ rng.normal(size=8) + 0.1 * rng.normal(size=n)).astype("float32")
    return x, y


def build_model(units=64, dropout=0.1, learning_rate=1e-3):
    inputs = keras.Input(shape=(8,))
    hidden = keras.layers.Dense(units, activation="relu")(inputs)
    hidden = keras.layers.Dropout(dropout)(hidden)
    outputs = keras.layers.Dense(1)(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model


def main():
    x, y = load_table()
    model = build_model()
    history = model.fit(x, y, epochs=10, batch_size=64, validation_split=0.2, verbose=0)
    print(f"val_loss {history.history['val_loss'][-1]:.4f}")


if __name__ == "__main__":
    main()
