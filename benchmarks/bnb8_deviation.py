"""Deviation of AdamW8bit/Lion8bit/AdEMAMix8bit from bitsandbytes 0.50.2 (CPU):
fraction of elements within 1e-5 / beyond 1e-3 of the per-tensor scale max|theta_ref - theta_0|, max.
Run: PYTHONPATH=$PWD KERAS_BACKEND=jax python benchmarks/bnb8_deviation.py"""
import sys, time, keras
sys.path.insert(0,'tests')
import bnb8_oracle as O, harness
from keras_optzoo.optimizers import bnb8bit
cases=[("AdamW8bit",dict(lr=1e-3,weight_decay=1e-2),dict(learning_rate=1e-3,weight_decay=1e-2)),
       ("Lion8bit",dict(lr=1e-4,weight_decay=0.1),dict(learning_rate=1e-4,weight_decay=0.1)),
       ("Lion8bit",dict(lr=1e-4),dict(learning_rate=1e-4)),
       ("AdEMAMix8bit",dict(lr=1e-3),dict(learning_rate=1e-3)),
       ("AdEMAMix8bit",dict(lr=1e-3,t_alpha=40,t_beta3=40),dict(learning_rate=1e-3,t_alpha=40,t_beta3=40))]
lays=O.layouts(); init,grads=O.problem()
for name,tk,kk in cases:
    ref=O.run_bnb(name,tk,init,grads,O.lrs(tk["lr"]),lays)
    for mode in harness.modes():
        t=time.time()
        ours=harness.run_ours(getattr(bnb8bit,name)(**kk),init,grads,O.lrs(tk["lr"]),mode,O.NAMES)
        print(keras.backend.backend(),name,kk,mode,O.deviation(ours,ref,init),
              [O.deviation([o],[r],[i])[2] for o,r,i in zip(ours,ref,init)], f"{time.time()-t:.1f}s",flush=True)
