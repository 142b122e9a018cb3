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


def random_search(x, y, n_trials=8, seed=0):
    rng = np.random.default_rng(seed)
    results = []
    for trial in range(n_trials):
        config = {"units": int(rng.choice([16, 32, 64, 128])),
                  "dropout": float(rng.uniform(0.0, 0.5)),
                  "learning_rate": float(10 ** rng.uniform(-4, -2))}
        model = build_model(**config)
        history = model.fit(x, y, epochs=10, batch_size=64, validation_split=0.2, verbose=0)
        results.append((history.history["val_loss"][-1], trial, config))
    return min(results, key=lambda r: r[0])


def main():
    x, y = load_table()
    val_loss, trial, config = random_search(x, y)
    print(f"best trial {trial}: val_loss {val_loss:.4f} with {config}")


if __name__ == "__main__":
    main()
