"""Compare learning rates for the CNN on a hold-out split."""

from tensorflow import keras

from data import load_images


def main():
    x, y = load_images()
    results = {}
    for lr in (1e-2, 1e-3, 1e-4):
        model = keras.Sequential([
            keras.Input(shape=(32, 32, 3)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10, activation="softmax"),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=lr),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        history = model.fit(x, y, epochs=3, batch_size=64, validation_split=0.2, verbose=0)
        results[lr] = history.history["val_accuracy"][-1]
    for lr, accuracy in sorted(results.items()):
        print(f"lr={lr:g}: val_accuracy={accuracy:.3f}")


if __name__ == "__main__":
    main()
