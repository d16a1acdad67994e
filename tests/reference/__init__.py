"""Independent NumPy (float64) reference optimizers used as a test oracle.

Written from torch.optim 2.13's update equations; deliberately shares no code with keras_optzoo.
"""
