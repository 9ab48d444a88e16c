"""Step 3 of the lecture: gradient descent, W = W - alpha dW, and the cost curve.

5,000 iterations on the full batch with alpha = 0.01 and L = (1/n) sum (y_hat - y)^2,
then the cost plotted as in the lecture (needs matplotlib: pip install 'fastnn[plot]').
Run: python examples/03_gradient_descent.py
"""

import fastnn
from fastnn.datasets import make_lecture_toy

X, y = make_lecture_toy()
model = fastnn.MLP(
    [2, 5, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64", seed=0
)
history = model.fit(
    X, y, epochs=5000, batch_size=2, optimizer="sgd", lr=0.01, shuffle=False, progress=False
)
cost = history["loss"]  # one value per iteration: one batch per epoch
print(f"cost: {cost[0]:.5f} at the first iteration, {cost[-1]:.5f} at the last")
print("predictions:", model.predict(X).ravel(), "targets:", y)

try:
    import matplotlib
except ImportError:
    print("no picture: pip install 'fastnn[plot]' for matplotlib")
else:
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.grid()
    plt.plot(range(len(cost)), cost)
    plt.title("Cost Function")
    plt.xlabel("Training Iterations")
    plt.ylabel("Cost")
    plt.savefig("cost.png")
    print("cost curve: cost.png")
