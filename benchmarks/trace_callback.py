"""Which functions ConvVizCallback traces after warm-up (issue 28): FuncGraph creations per logging step.

Trains the demo model for N batches with every soak method at every batch
(``soak_callback.CHEAP`` sizes) and counts, from step 3 on, each new
``FuncGraph`` by its name and the last library frames that made it. A
steady state traces nothing; before the top-k fix this printed three
``Dataset_*`` graphs per step from ``topk.py _as_dataset``.

    python benchmarks/trace_callback.py 9
"""
import os, sys, gc, tempfile, traceback, collections
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0"); os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from soak_callback import CHEAP
import numpy as np, keras
from tensorflow.python.framework import func_graph
from keras_convviz import ConvVizCallback, demo
steps = int(sys.argv[1]) if len(sys.argv) > 1 else 9
orig = func_graph.FuncGraph.__init__
state = {"step": 0}
created = collections.Counter()
def init(self, *a, **k):
    orig(self, *a, **k)
    if state["step"] >= 3:
        st = traceback.extract_stack()
        ours = [f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}" for f in st if "keras_convviz" in f.filename or "site-packages/keras/" in f.filename]
        created[(a[0] if a else k.get("name"), tuple(ours[-4:]))] += 1
func_graph.FuncGraph.__init__ = init
model = demo.load_model(); model.compile("sgd", "sparse_categorical_crossentropy")
x, y, _ = demo.shapes(steps * 2, seed=3); x = np.asarray(x, np.float32)
heldout = np.asarray(demo.shapes(4, seed=4)[0], np.float32)
cb = ConvVizCallback(tempfile.mkdtemp(), x[:1], methods={m: dict(CHEAP[m]) for m in CHEAP}, every_n_epochs=None,
                     every_n_batches=1, maps=1, heldout=heldout)
lam = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs=None: state.__setitem__("step", b + 1))
model.fit(x, np.asarray(y), batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[cb, lam])
print("FuncGraphs created after step 3, per step:")
for (name, where), n in created.most_common(20):
    print(round(n / (steps - 3), 2), name, where)
