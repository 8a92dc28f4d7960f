"""Which functions ConvVizCallback traces after warm-up, and what memory grows (issue 28).

Trains the demo model for N batches with every soak method at every batch
(``soak_callback.CHEAP`` sizes; ``--all`` adds ``soak_callback.ADDED``, the
22 methods of ``soak_callback.py --cheap --all``; ``--methods`` picks some)
and counts, from step ``--from`` (3) on, each new ``FuncGraph`` by its name
and the last library frames that made it. A steady state traces nothing;
before the top-k fix this printed three ``Dataset_*`` graphs per step from
``topk.py _as_dataset``. Also printed, per step from ``--from``: Python's
object count (``gc``), glibc's heap in use and held (``mallinfo2``: live C
allocations vs what malloc keeps from the OS) and ``RssAnon`` /
``RssFile``; with ``--tracemalloc``, the Python allocation sites that grew most.

    python benchmarks/trace_callback.py 9
    python benchmarks/trace_callback.py 330 --all --from 30       # heap in use flat? (issue 28 item 2)
    python benchmarks/trace_callback.py 150 --methods invariance --from 30
    python benchmarks/trace_callback.py 120 --all --from 20 --tracemalloc
"""
import os, sys, gc, tempfile, traceback, collections, argparse, ctypes
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0"); os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("steps", type=int, nargs="?", default=9)
parser.add_argument("--all", action="store_true", help="also the methods the registry added (soak_callback.ADDED)")
parser.add_argument("--from", dest="start", type=int, default=3, help="count from this step on (after warm-up)")
parser.add_argument("--tracemalloc", action="store_true", help="top allocation growth from --from to the end")
parser.add_argument("--methods", nargs="+", help="only these of the soak's methods (default: all of them)")
args = parser.parse_args()
from soak_callback import ADDED, CHEAP, rss_bytes
import tracemalloc
import numpy as np, keras
from tensorflow.python.framework import func_graph
from keras_convviz import ConvVizCallback, demo
steps, start = args.steps, args.start


class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                 "fsmblks", "uordblks", "fordblks", "keepcost")]


_libc = ctypes.CDLL("libc.so.6")
_libc.mallinfo2.restype = MallInfo2


def rss_parts():
    """(RssAnon, RssFile) in MB from /proc/self/status: private memory vs pages of mapped files (libraries)."""
    parts = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                parts[line.split(":")[0]] = int(line.split()[1]) / 1024
    return parts.get("RssAnon", 0.0), parts.get("RssFile", 0.0)


def heap():
    """(bytes in use, bytes held) by glibc malloc over all arenas, mmapped chunks included."""
    m = _libc.mallinfo2()
    return m.uordblks + m.hblkhd, m.arena + m.hblkhd


options = dict(CHEAP, **(ADDED if args.all or args.methods else {}))
if args.methods:
    options = {m: options[m] for m in args.methods}
orig = func_graph.FuncGraph.__init__
state = {"step": 0, "snap": None, "objects": [], "rss": [], "heap": []}
created = collections.Counter()
def init(self, *a, **k):
    orig(self, *a, **k)
    if state["step"] >= start:
        st = traceback.extract_stack()
        ours = [f"{os.path.basename(f.filename)}:{f.lineno}:{f.name}" for f in st if "keras_convviz" in f.filename or "site-packages/keras/" in f.filename]
        created[(a[0] if a else k.get("name"), tuple(ours[-4:]))] += 1
func_graph.FuncGraph.__init__ = init
def batch_end(b, logs=None):
    state["step"] = b + 1
    if b + 1 >= start:
        gc.collect()
        state["objects"].append(len(gc.get_objects())); state["rss"].append(rss_bytes() / 2**20)
        state["heap"].append(heap()); state.setdefault("parts", []).append(rss_parts())
    if args.tracemalloc and b + 1 == start:
        state["snap"] = tracemalloc.take_snapshot()
if args.tracemalloc:
    tracemalloc.start(8)
model = demo.load_model(); model.compile("sgd", "sparse_categorical_crossentropy")
x, y, _ = demo.shapes(steps * 2, seed=3); x = np.asarray(x, np.float32)
heldout = np.asarray(demo.shapes(4, seed=4)[0], np.float32)
cb = ConvVizCallback(tempfile.mkdtemp(), x[:1], methods={m: dict(options[m]) for m in options}, every_n_epochs=None,
                     every_n_batches=1, maps=1, heldout=heldout)
lam = keras.callbacks.LambdaCallback(on_train_batch_end=batch_end)


model.fit(x, np.asarray(y), batch_size=2, epochs=1, shuffle=False, verbose=0, callbacks=[cb, lam])
print("methods:", len(options), "failed:", dict(cb.failed))
print(f"FuncGraphs created after step {start}, per step:")
for (name, where), n in created.most_common(20):
    print(round(n / (steps - start), 2), name, where)
obj = state["objects"]
print("gc objects per step from step", start, ":", obj[:3], "...", obj[-3:],
      f"({(obj[-1] - obj[0]) / max(len(obj) - 1, 1):+.1f} per step)")
h = state["heap"]
slope = np.polyfit(np.arange(len(h)), [v[0] for v in h], 1)[0] / 1024
print(f"glibc heap in use, slope from step {start}: {slope:+.2f} KB/step")
print(f"glibc heap in use MB from step {start}: {h[0][0] / 2**20:.1f} -> {h[-1][0] / 2**20:.1f}; "
      f"held by malloc: {h[0][1] / 2**20:.1f} -> {h[-1][1] / 2**20:.1f}")
ps = state["parts"]
for i in range(0, len(h), max(len(h) // 8, 1)):
    print(f"  step {start + i}: heap in use {h[i][0] / 2**20:.1f} MB, held {h[i][1] / 2**20:.1f} MB, "
          f"RssAnon {ps[i][0]:.1f} MB, gc objects {obj[i]}")
(anon0, file0), (anon1, file1) = ps[0], ps[-1]
print(f"RSS MB from step {start}: {state['rss'][0]:.1f} -> {state['rss'][-1]:.1f}; anonymous: {anon0:.1f} -> "
      f"{anon1:.1f}, file pages: {file0:.1f} -> {file1:.1f}")
if args.tracemalloc:
    gc.collect()
    stats = tracemalloc.take_snapshot().compare_to(state["snap"], "traceback")
    print("tracemalloc growth, top 15:")
    for s in stats[:15]:
        print(f"{s.size_diff / 1024:+.1f} KiB {s.count_diff:+d} blocks")
        for line in s.traceback.format()[-6:]:
            print("   ", line)
