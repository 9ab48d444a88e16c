"""Step 1 of the lecture: Rosenblatt's perceptron, y = sign(W . x + b).

It learns AND, whose classes one line separates, and never learns XOR, whose classes no
line separates: it keeps making mistakes however many epochs it gets.
Run: python examples/01_perceptron.py
"""

import fastnn
from fastnn.datasets import make_xor

X, y_xor = make_xor()  # the four corners of the unit square
y_and = X[:, 0] * X[:, 1]

for name, y in (("AND", y_and), ("XOR", y_xor)):
    perceptron = fastnn.Perceptron(n_features=2, max_epochs=20, seed=0).fit(X, y)
    print(f"{name}: W = {perceptron.W}, b = {perceptron.b}")
    print(f"     mistakes per epoch: {perceptron.mistakes_}")
    print(f"     converged: {perceptron.converged_}")
