"""Train a small CNN on the image set."""

from tensorflow import keras

from data import load_images


def build_model(num_classes=10):
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
    model = build_model()
    model.fit(x, y, epochs=5, batch_size=64, validation_split=0.2)
    model.save("cnn.keras")


if __name__ == "__main__":
    main()
