"""Step 2 of the lecture: the 2-5-1 sigmoid network, one iteration written out.

``model.trace`` runs one forward and backward pass without updating anything and prints
every z, h, dz, dW and dh with its shape, in the lecture's column notation. Look for the
note under dh^1: the lecture's code computes dh1 from dw2 where it needs W2.
Run: python examples/02_network_trace.py
"""

import fastnn
from fastnn.datasets import make_lecture_toy

X, y = make_lecture_toy()  # two samples, two features each, one target each
model = fastnn.MLP(
    [2, 5, 1], activation="sigmoid", output="sigmoid", loss="mse", dtype="float64", seed=0
)
trace = model.trace(X, y)
print(trace)

# Each entry is a host array with its equation: dW^1 is what gradient descent subtracts.
print(trace["dW^1"].equation, trace["dW^1"].shape)
