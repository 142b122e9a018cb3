"""Train a small CNN on the image set, with k-fold cross validation."""

import numpy as np
from tensorflow import keras

from data import kfold_indices, load_images


def cross_validate(x, y, k=5, epochs=5):
    """Mean and standard deviation of the validation accuracy over ``k`` folds."""
    scores = []
    for fold, (train_idx, val_idx) in enumerate(kfold_indices(len(x), k)):
        keras.backend.clear_session()
        model = build_model()
        model.fit(x[train_idx], y[train_idx], epochs=epochs, batch_size=64, verbose=0)
        _, accuracy = model.evaluate(x[val_idx], y[val_idx], verbose=0)
        print(f"fold {fold}: accuracy {accuracy:.3f}")
        scores.append(accuracy)
    return float(np.mean(scores)), float(np.std(scores))


def build_model(num_classes=10):
    """A two-block CNN for 32x32 RGB images."""
    model = keras.Sequential([
        keras.Input(shape=(32, 32, 3)),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(num_classes, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main():
    x, y = load_images()
    mean, std = cross_validate(x, y)
    print(f"{mean:.3f} +/- {std:.3f}")


if __name__ == "__main__":
    main()
