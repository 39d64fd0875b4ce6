"""Wall time of full MNIST training runs: rpucircuit against IBM aihwkit 1.2, epoch by epoch.

What it measures
    Real training runs on all 60,000 MNIST training images at mini-batch 1 (SGD, η = 0.01,
    cross-entropy), with the test error on all 10,000 test images after every epoch, for

    * ``fc``   paper A's 784-256-128-10 sigmoid network on paper A's RPU baseline
               (ours: preset ``gokmen_vlasov_2016``, BL 10);
    * ``cnn``  paper B's CNN (conv 16×5×5, conv 32×5×5×16, FC 512-128-10, tanh, max-pool) on
               paper B's RPU model with noise, bound and update management
               (ours: preset ``gokmen_onen_haensch_2017``, BL 10, one device per weight);

    each trained by two contenders, one process at a time:

    * ``ours``     :func:`rpucircuit.training.loop.train` on the equivalent
                   :class:`~rpucircuit.config.training.TrainingConfig` (seed ``--seed``), in a
                   worker process of this Python; checkpoints every epoch as the CLI does;
    * ``aihwkit``  aihwkit 1.2 in a worker process of the peers' Python (torch + aihwkit,
                   built by ``bench/setup_peers.sh``): ``SingleRPUConfig`` with
                   ``ConstantStepDevice()`` (its defaults are paper A's device and
                   periphery: dw_min 0.001 with 30 % d2d/c2c, bounds ±0.6 with 30 % d2d,
                   up/down d2d 0.01, output noise 0.06, output bound 12, 7-bit DAC, 9-bit
                   ADC, noise management ABS_MAX in both reads, bound management ITERATIVE,
                   update management on), ``desired_bl = 10`` with
                   ``update_bl_management = False`` (a fixed BL of 10 as in our presets;
                   aihwkit's default would shorten BL when the update is small), paper A's
                   mapping (``digital_bias = False``: the bias is an analog column driven by
                   1; no tile split), ``AnalogSGD``, ``torch.set_num_threads(1)``.

    What differs from ours (aihwkit cannot express it): aihwkit ignores bound management
    in the backward read, so its CNN runs paper B's configuration without backward bound
    management (ours has it in both reads; for FC both have it in the forward read only, as
    paper A's baseline); aihwkit evaluates the test set in mini-batches of
    :data:`EVAL_BATCH` images (its usual way; ours reads one image at a time); aihwkit's own
    random streams (device variations, noise, pulses) are seeded by torch and its C++
    simulator, not by ours, so the two runs are statistically, not bit-wise, alike.

    Both see the same data: the driver loads MNIST once
    (:func:`rpucircuit.training.data.load_mnist`, pixel/255) and writes it, with each
    epoch's order of the training images, into the state folder. The orders are drawn
    exactly as :func:`rpucircuit.training.train` draws them for ``--seed`` (one
    permutation per epoch from the second child of ``SeedSequence(seed)``), so aihwkit
    visits the images in the same order as ours.

How it keeps each timed piece short and the machine quiet
    A run is split into calls of a few epochs each (aihwkit: ``--fc-per-call``, default 5
    epochs ≈ 3 min, ``--cnn-per-call``, default 1 epoch ≈ 4-8 min; ours:
    ``--ours-fc-per-call``, default 30 epochs ≈ 3 min, ``--ours-cnn-per-call``, default 3
    epochs ≈ 3 min); each call is one worker process that continues from the state folder
    (ours: the training checkpoint, ``train(..., resume=True, stop_after=...)``, bit-exact;
    it needs the same config key, so a change of ``TrainingConfig``'s fields between calls
    stops the run with a ``StoreError``: start it over in a new ``--state``; aihwkit:
    ``torch.save`` of the model's and optimizer's state, with every tile's weights and
    device parameters, plus torch's generator state; its C++ simulator's own generator is
    re-seeded by each new process). Each call is prefixed with ``--quiet CMD`` (e.g.
    ``bench/quiet.sh``, which runs one measurement at a time and first waits for the other
    processes' CPU use to drop; checked before any work starts). Calls
    alternate between the contenders round by round (each one's next call in turn), so
    both see the same machine. Rerunning the same command continues where a killed one
    stopped; ``--report`` only prints the table.

    Ours runs a snapshot of ``rpucircuit/`` at a git revision (``--code``, default HEAD;
    taken into ``STATE/code`` when the state folder is new and kept for its later calls, so
    edits in the shared working tree never change a run midway; ``--code worktree`` runs the
    tree as it is), and an untimed warm-up process compiles its numba kernels into their
    disk cache before the first timed call (a cold cache would otherwise put tens of seconds
    of compilation into epoch 1). The commit is printed and stored in ``STATE/meta.json``.

    Every call records its wall time, the CPU time of the worker (``own CPU``, in cores:
    above 1 when ours' update thread overlapped the next sample), the CPU time that *other*
    processes used meanwhile (machine busy time from ``/proc/stat`` minus the worker's own,
    in cores: the machine load), and whether ours' background update thread was on
    (``--update-thread off`` trains with ``update_thread=False``). Workers run with
    ``OPENBLAS_NUM_THREADS=1`` (and OMP/MKL/NUMBA), as in ``bench_training.py``.

The table
    Per network and contender: epochs run; median training time per epoch; median test
    evaluation time per epoch; the wall time of a 30-epoch run, *measured* (when 30 epochs
    ran: Σ training + Σ evaluation + the first call's start-up: imports, data, network) or
    *projected* (fewer epochs: the same with the mean epoch × 30); the test error after the
    last epoch run; the machine load; and aihwkit / ours for the per-epoch and the 30-epoch
    wall times. Checkpoint writing and the later calls' start-ups (which a run that is not
    split never pays) are left out of both.

Usage
    python bench/bench_wall_time.py --epochs 30 --cnn-epochs 1 --state runs/wall \
        --quiet bench/quiet.sh
    python bench/bench_wall_time.py --state runs/wall --report
    python bench/bench_wall_time.py --nets fc --epochs 2 --state /tmp/w   # a quick try
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_PYTHON = HERE / ".cache" / "peers-venv" / "bin" / "python"
CONTENDERS = ("ours", "aihwkit")
NETS = ("fc", "cnn")
LR = 0.01
"""SGD learning rate η (papers A and B)."""
N_TRAIN = 60000
"""MNIST training images per epoch (``--n-train`` takes fewer for a quick try)."""
N_TEST = 10000
"""MNIST test images evaluated after every epoch (``--n-test``)."""
FULL_EPOCHS = 30
"""Epochs of the papers' full schedule (the 30-epoch wall time is projected to this)."""
EVAL_BATCH = 500
"""Test images per aihwkit forward call during evaluation."""
PRESET = {"fc": "gokmen_vlasov_2016", "cnn": "gokmen_onen_haensch_2017"}
"""Our array-model preset per network (paper A's baseline; paper B's managed model)."""


# --------------------------------------------------------------------------- shared helpers


def _cpu_busy_jiffies() -> int:
    with open("/proc/stat") as f:
        vals = [int(v) for v in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal: busy = all but idle and iowait
    return sum(vals[:8]) - vals[3] - vals[4]


class _CallMeter:
    """Wall time, own CPU and other processes' CPU over one worker call."""

    def __init__(self) -> None:
        self.busy0 = _cpu_busy_jiffies()
        self.cpu0 = time.process_time()
        self.t0 = time.perf_counter()

    def done(self) -> dict[str, Any]:
        wall = time.perf_counter() - self.t0
        cpu = time.process_time() - self.cpu0
        busy = (_cpu_busy_jiffies() - self.busy0) / os.sysconf("SC_CLK_TCK")
        return {
            "wall_s": wall,
            "own_cpu_cores": cpu / wall,
            "other_cpu_cores": max(busy - cpu, 0.0) / wall,
        }


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text()) if path.is_file() else None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _records(state: Path, contender: str, net: str) -> dict[str, Any]:
    rec = _read_json(state / f"{contender}-{net}" / "records.json")
    return rec if rec is not None else {"epochs": [], "calls": []}


# --------------------------------------------------------------------------- workers


def _worker_ours(state: Path, net: str, upto: int, seed: int, update_thread: bool) -> None:
    import rpucircuit.training as training
    from rpucircuit.config.training import ModelSpec, TrainingConfig
    from rpucircuit.model.tile import update_thread_enabled
    from rpucircuit.training.data import Mnist

    meter = _CallMeter()
    folder = state / f"ours-{net}"
    folder.mkdir(exist_ok=True)
    rec = _records(state, "ours", net)
    meta = _read_json(state / "meta.json")
    with np.load(state / "mnist.npz") as d:
        data = Mnist(
            train_images=d["train_images"],
            train_labels=d["train_labels"],
            test_images=d["test_images"],
            test_labels=d["test_labels"],
            source=str(state / "mnist.npz"),
        )
    cfg = TrainingConfig(
        network=net,  # type: ignore[arg-type]  # checked against NETS by argparse
        epochs=FULL_EPOCHS,
        lr=LR,
        seed=seed,
        n_train=meta["n_train"],
        n_test=meta["n_test"],
        eval_last=1,
        model=ModelSpec(preset=PRESET[net]),
    )
    resume = (folder / "checkpoint.h5").is_file()
    before = len(rec["epochs"])
    result = training.train(
        cfg,
        folder,
        resume=resume,
        data=data,
        progress=False,
        stop_after=upto,
        overwrite=False,
        update_thread=update_thread,
    )
    thread_on = update_thread and update_thread_enabled()
    h = result.history
    rec["epochs"] = [
        {
            "epoch": i + 1,
            "train_s": float(h["train_seconds"][i]),
            "eval_s": float(h["eval_seconds"][i]),
            "test_error": float(h["test_error"][i]),
            "train_loss": float(h["train_loss"][i]),
        }
        for i in range(len(h["test_error"]))
    ]
    new = rec["epochs"][before:]
    call = meter.done()
    call.update(
        first_epoch=before + 1,
        last_epoch=len(rec["epochs"]),
        startup_s=call["wall_s"] - sum(e["train_s"] + e["eval_s"] for e in new),
        update_thread=thread_on,
        threads="numba kernels, 1 main thread + update thread" if thread_on else "1 thread",
    )
    rec["calls"].append(call)
    _write_json(folder / "records.json", rec)


def _warm_ours(net: str) -> None:
    """A few training steps and reads, so numba's kernels are compiled and cached on disk."""
    from rpucircuit.config.training import ModelSpec, TrainingConfig
    from rpucircuit.training.loop import build_network

    cfg = TrainingConfig(network=net, model=ModelSpec(preset=PRESET[net]))  # type: ignore[arg-type]
    network = build_network(cfg, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((8, 784))
    for i in range(8):
        network.train_step(x[i], i % 10, LR)
    network.evaluate(x, np.arange(8) % 10)


def _aihwkit_model(net: str) -> Any:
    from aihwkit.nn import AnalogConv2d, AnalogLinear  # type: ignore[import-not-found]
    from aihwkit.simulator.configs import ConstantStepDevice, SingleRPUConfig  # type: ignore[import-not-found]
    from torch import nn  # type: ignore[import-not-found]

    cfg = SingleRPUConfig(device=ConstantStepDevice())
    cfg.update.desired_bl = 10
    cfg.update.update_bl_management = False
    cfg.mapping.digital_bias = False
    cfg.mapping.max_input_size = 0
    cfg.mapping.max_output_size = 0
    if net == "fc":
        return nn.Sequential(
            AnalogLinear(784, 256, rpu_config=cfg),
            nn.Sigmoid(),
            AnalogLinear(256, 128, rpu_config=cfg),
            nn.Sigmoid(),
            AnalogLinear(128, 10, rpu_config=cfg),
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        AnalogConv2d(1, 16, 5, rpu_config=cfg),
        nn.Tanh(),
        nn.MaxPool2d(2),
        AnalogConv2d(16, 32, 5, rpu_config=cfg),
        nn.Tanh(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        AnalogLinear(512, 128, rpu_config=cfg),
        nn.Tanh(),
        AnalogLinear(128, 10, rpu_config=cfg),
    )


def _worker_aihwkit(state: Path, net: str, upto: int, seed: int) -> None:
    import torch
    import torch.nn.functional as func  # type: ignore[import-not-found]
    from aihwkit.optim import AnalogSGD  # type: ignore[import-not-found]

    meter = _CallMeter()
    torch.set_num_threads(1)
    folder = state / f"aihwkit-{net}"
    folder.mkdir(exist_ok=True)
    rec = _records(state, "aihwkit", net)
    meta = _read_json(state / "meta.json")
    n_train, n_test = meta["n_train"], meta["n_test"]
    with np.load(state / "mnist.npz") as d:
        scale = np.float32(255.0)
        x_train = torch.from_numpy((d["train_images"].astype(np.float32) / scale).reshape(-1, 784))
        y_train = torch.from_numpy(d["train_labels"].astype(np.int64))
        x_test = torch.from_numpy((d["test_images"].astype(np.float32) / scale).reshape(-1, 784))
        y_test = torch.from_numpy(d["test_labels"].astype(np.int64))
    orders = np.load(state / "orders.npy")
    torch.manual_seed(seed)
    model = _aihwkit_model(net)
    ckpt = folder / "state.pt"
    saved = torch.load(ckpt, weights_only=False) if ckpt.is_file() else None
    if saved is not None:
        model.load_state_dict(saved["model"])
    # the optimizer only after the state is loaded: aihwkit 1.2's load_state_dict replaces
    # the tiles' parameter objects, and an optimizer made before it then updates nothing
    # (measured: the weights stayed frozen for the rest of the run)
    opt = AnalogSGD(model.parameters(), lr=LR)
    opt.regroup_param_groups(model)
    if saved is not None:
        opt.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
    done = len(rec["epochs"])
    startup = time.perf_counter() - meter.t0
    for epoch in range(done + 1, upto + 1):
        model.train()
        loss_sum = 0.0
        t0 = time.perf_counter()
        for i in orders[epoch - 1]:
            opt.zero_grad()
            loss = func.cross_entropy(model(x_train[i : i + 1]), y_train[i : i + 1])
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
        t_train = time.perf_counter() - t0
        t1 = time.perf_counter()
        model.eval()
        wrong = 0
        with torch.no_grad():
            for j in range(0, n_test, EVAL_BATCH):
                pred = model(x_test[j : j + EVAL_BATCH]).argmax(dim=1)
                wrong += int((pred != y_test[j : j + EVAL_BATCH]).sum())
        t_eval = time.perf_counter() - t1
        rec["epochs"].append(
            {
                "epoch": epoch,
                "train_s": t_train,
                "eval_s": t_eval,
                "test_error": wrong / n_test,
                "train_loss": loss_sum / n_train,
            }
        )
        tmp = folder / "state.pt.tmp"
        saved = {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "torch_rng": torch.get_rng_state(),
        }
        torch.save(saved, tmp)
        os.replace(tmp, ckpt)
        print(f"aihwkit {net} epoch {epoch}: {t_train:.1f} s train, {t_eval:.1f} s eval, "
              f"test error {100 * wrong / n_test:.2f} %", flush=True)  # fmt: skip
    call = meter.done()
    call.update(
        first_epoch=done + 1,
        last_epoch=upto,
        startup_s=startup,
        update_thread=False,
        threads=f"torch intra-op threads {torch.get_num_threads()}",
    )
    rec["calls"].append(call)
    _write_json(folder / "records.json", rec)


def worker_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--contender", choices=CONTENDERS, required=True)
    p.add_argument("--net", choices=NETS, required=True)
    p.add_argument("--state", type=Path, required=True)
    p.add_argument("--upto", type=int, required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--update-thread", choices=("on", "off"), default="on")
    a = p.parse_args(argv)
    if a.contender == "ours" and a.upto == 0:
        _warm_ours(a.net)
    elif a.contender == "ours":
        _worker_ours(a.state, a.net, a.upto, a.seed, update_thread=a.update_thread == "on")
    else:
        _worker_aihwkit(a.state, a.net, a.upto, a.seed)
    return 0


# --------------------------------------------------------------------------- driver


def _snapshot(state: Path, rev: str) -> str:
    """``rpucircuit/`` at git revision ``rev`` into ``state/code``; returns the commit."""
    if rev == "worktree":
        return "worktree"
    repo = HERE.parent
    sha = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{rev}^{{commit}}"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    code = state / "code"
    if not (code / "rpucircuit").is_dir():
        code.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(
            ["git", "-C", str(repo), "archive", sha, "rpucircuit"], capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(code)], input=archive.stdout, check=True)
    return sha


def _prepare(
    state: Path, seed: int, epochs: int, n_train: int, n_test: int, code: str
) -> dict[str, Any]:
    """MNIST as uint8 arrays, each epoch's training order and the code, once into ``state``."""
    state.mkdir(parents=True, exist_ok=True)
    meta: dict[str, Any] = {"seed": seed, "n_train": n_train, "n_test": n_test}
    old = _read_json(state / "meta.json")
    if old is not None:
        code_then = old.pop("code", "worktree")
        if old != meta:
            raise SystemExit(
                f"{state} holds a run with {old}; this one is {meta}: use another --state"
            )
        if code_then != "worktree":
            print(f"NOTE: {state} continues with the code it started with ({code_then[:12]})")
        meta["code"] = code_then
    else:
        meta["code"] = _snapshot(state, code)
    if not (state / "mnist.npz").is_file():
        from rpucircuit.training.data import load_mnist

        m = load_mnist()
        tmp = state / "mnist.tmp.npz"
        np.savez(
            tmp,
            train_images=m.train_images[:n_train],
            train_labels=m.train_labels[:n_train],
            test_images=m.test_images[:n_test],
            test_labels=m.test_labels[:n_test],
        )
        os.replace(tmp, state / "mnist.npz")
    orders_path = state / "orders.npy"
    have = np.load(orders_path).shape[0] if orders_path.is_file() else 0
    if have < epochs:
        # as rpucircuit.training draws them: SeedSequence(seed).spawn(2)[1], one
        # permutation of the training subset per epoch
        order_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
        orders = np.stack([order_rng.permutation(n_train) for _ in range(epochs)])
        tmp_path = state / "orders.tmp.npy"
        np.save(tmp_path, orders.astype(np.int32))
        os.replace(tmp_path, orders_path)
    _write_json(state / "meta.json", meta)
    return meta


def _run_call(
    args: argparse.Namespace, contender: str, net: str, upto: int, peer_python: str
) -> bool:
    env = dict(os.environ)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = "1"
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if contender == "ours" and (args.state / "code" / "rpucircuit").is_dir():
        env["PYTHONPATH"] = str((args.state / "code").resolve())  # the snapshot, not the tree
    python = sys.executable if contender == "ours" else peer_python
    worker = [python, str(Path(__file__).resolve()), "--worker", "--contender", contender,
              "--net", net, "--state", str(args.state), "--seed", str(args.seed),
              "--update-thread", args.update_thread]  # fmt: skip
    if upto == 0:  # untimed: compile (numba's disk cache) before the first timed call
        subprocess.run([*worker, "--upto", "0"], env=env, capture_output=True, check=True)
        return True
    cmd = (shlex.split(args.quiet) if args.quiet else []) + [*worker, "--upto", str(upto)]
    print(f"[{time.strftime('%H:%M:%S')}] {contender} {net} -> epoch {upto}", flush=True)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  !! {contender}/{net} failed (exit {r.returncode}):\n{r.stderr[-3000:]}")
        return False
    rec = _records(args.state, contender, net)
    call = rec["calls"][-1]
    for e in rec["epochs"][call["first_epoch"] - 1 : call["last_epoch"]]:
        print(f"  epoch {e['epoch']:2d}: train {e['train_s']:7.1f} s, eval {e['eval_s']:5.1f} s, "
              f"test error {100 * e['test_error']:5.2f} %, loss {e['train_loss']:.4f}")  # fmt: skip
    print(f"  call: wall {call['wall_s']:.1f} s, start-up {call['startup_s']:.1f} s, own CPU "
          f"{call['own_cpu_cores']:.2f}, other CPU {call['other_cpu_cores']:.2f} cores",
          flush=True)  # fmt: skip
    return True


def _peer_ok(peer_python: Path) -> bool:
    if not peer_python.exists():
        return False
    r = subprocess.run([str(peer_python), "-c", "import aihwkit, torch"], capture_output=True)
    return r.returncode == 0


def report(state: Path, nets: list[str]) -> None:
    """Print the Markdown table from the records in ``state``."""
    print(
        "\n| network | contender | epochs run | train s/epoch (median) | test eval s/epoch "
        "(median) | 30-epoch wall time | test error after last epoch | machine load "
        "(other CPU, cores, median / max) | own CPU (cores) | update thread "
        "| aihwkit / ours, per epoch | aihwkit / ours, 30 epochs |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for net in nets:
        per_epoch: dict[str, float] = {}
        full: dict[str, float] = {}
        rows: list[tuple[str, str]] = []
        for c in CONTENDERS:
            rec = _records(state, c, net)
            eps, calls = rec["epochs"], rec["calls"]
            if not eps:
                continue
            tr = [e["train_s"] for e in eps]
            ev = [e["eval_s"] for e in eps]
            per_epoch[c] = statistics.median(tr) + statistics.median(ev)
            startup = calls[0]["startup_s"]
            n = len(eps)
            if n >= FULL_EPOCHS:
                total = startup + sum(tr[:FULL_EPOCHS]) + sum(ev[:FULL_EPOCHS])
                kind = "measured"
            else:
                total = startup + FULL_EPOCHS * (sum(tr) + sum(ev)) / n
                kind = f"projected from {n}"
            full[c] = total
            other = [k["other_cpu_cores"] for k in calls]
            own = [k["own_cpu_cores"] for k in calls]
            threads = {bool(k["update_thread"]) for k in calls}
            thread = "—" if c != "ours" else "/".join("on" if t else "off" for t in sorted(threads))
            rows.append(
                (
                    c,
                    f"| {net} | {c} | {n} | {statistics.median(tr):.1f} | "
                    f"{statistics.median(ev):.1f} | {total:,.0f} s = {total / 60:.1f} min "
                    f"({kind}) | {100 * eps[-1]['test_error']:.2f} % | "
                    f"{statistics.median(other):.2f} / {max(other):.2f} | "
                    f"{statistics.median(own):.2f} | {thread} |",
                )
            )
        for c, row in rows:
            if c == "aihwkit" and "ours" in per_epoch:
                ratio = f" {per_epoch['aihwkit'] / per_epoch['ours']:.2f}× | "
                ratio += f"{full['aihwkit'] / full['ours']:.2f}× |"
            else:
                ratio = " — | — |"
            print(row + ratio)
    print(
        "\n30-epoch wall time: the first call's start-up + Σ(training + test evaluation) over "
        f"{FULL_EPOCHS} epochs when that many ran (measured), else the mean epoch × "
        f"{FULL_EPOCHS} (projected); checkpoint writes and later start-ups are left out."
    )


def _check_args(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad arguments before any work (data, snapshot, the warm-up's compilation)."""
    positive = ("epochs", "fc_per_call", "cnn_per_call", "ours_fc_per_call", "ours_cnn_per_call")
    for name in (*positive, "cnn_epochs"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} = {value}: must be >= 1")
    if not 1 <= args.n_train <= N_TRAIN:
        p.error(f"--n-train = {args.n_train}: must be in 1..{N_TRAIN}")
    if not 1 <= args.n_test <= N_TEST:
        p.error(f"--n-test = {args.n_test}: must be in 1..{N_TEST}")
    if args.quiet:
        try:
            prefix = shlex.split(args.quiet)
        except ValueError as exc:
            p.error(f"--quiet {args.quiet!r}: {exc}")
        if not prefix or shutil.which(prefix[0]) is None:
            p.error(
                f"--quiet {args.quiet!r}: {prefix[0] if prefix else ''!r} is not an executable "
                "command (e.g. bench/quiet.sh; leave --quiet out to run calls as they are)"
            )
    if args.code != "worktree" and not args.report:
        r = subprocess.run(
            ["git", "-C", str(HERE.parent), "rev-parse", "--verify", f"{args.code}^{{commit}}"],
            capture_output=True, text=True,
        )  # fmt: skip
        if r.returncode != 0:
            p.error(f"--code {args.code!r}: not a git revision of this repository")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return worker_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--nets", default="fc,cnn", help="comma list of fc, cnn")
    p.add_argument("--contenders", default="ours,aihwkit", help="comma list of ours, aihwkit")
    p.add_argument("--epochs", type=int, default=1, help="epochs to run per network")
    p.add_argument("--cnn-epochs", type=int, help="epochs for the CNN (default: --epochs)")
    p.add_argument("--fc-per-call", type=int, default=5, help="aihwkit FC epochs per call")
    p.add_argument("--cnn-per-call", type=int, default=1, help="aihwkit CNN epochs per call")
    p.add_argument("--ours-fc-per-call", type=int, default=30, help="our FC epochs per call")
    p.add_argument("--ours-cnn-per-call", type=int, default=3, help="our CNN epochs per call")
    p.add_argument("--state", type=Path, required=True, help="folder of data, state, records")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--n-train", type=int, default=N_TRAIN, help="training images (quick tries)")
    p.add_argument("--n-test", type=int, default=N_TEST, help="test images (quick tries)")
    p.add_argument("--quiet", default="", help="command prefix of each call (e.g. bench/quiet.sh)")
    p.add_argument("--update-thread", choices=("on", "off"), default="on")
    p.add_argument(
        "--code",
        default="HEAD",
        help="git revision of rpucircuit that ours runs (a snapshot in STATE/code, taken when "
        "the state folder is new), or 'worktree' for the working tree as it is",
    )
    p.add_argument("--peer-python", type=Path, default=DEFAULT_PEER_PYTHON)
    p.add_argument("--report", action="store_true", help="only print the table")
    args = p.parse_args(argv)
    nets = [n.strip() for n in args.nets.split(",") if n.strip()]
    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    for n in nets:
        if n not in NETS:
            p.error(f"unknown network {n!r}: choose from {', '.join(NETS)}")
    for c in contenders:
        if c not in CONTENDERS:
            p.error(f"unknown contender {c!r}: choose from {', '.join(CONTENDERS)}")
    _check_args(p, args)
    if args.report:
        report(args.state, nets)
        return 0
    if "aihwkit" in contenders and not _peer_ok(args.peer_python):
        print(f"NOTE: aihwkit is ABSENT at {args.peer_python} (bash bench/setup_peers.sh): "
              "rpucircuit only")  # fmt: skip
        contenders.remove("aihwkit")
    target = {"fc": args.epochs, "cnn": args.cnn_epochs or args.epochs}
    per_call = {
        ("aihwkit", "fc"): args.fc_per_call,
        ("aihwkit", "cnn"): args.cnn_per_call,
        ("ours", "fc"): args.ours_fc_per_call,
        ("ours", "cnn"): args.ours_cnn_per_call,
    }
    meta = _prepare(
        args.state, args.seed, max(target[n] for n in nets), args.n_train, args.n_test, args.code
    )
    if "ours" in contenders:
        for net in nets:
            _run_call(args, "ours", net, 0, "")
    print(f"rpucircuit code: {meta['code']}; state {args.state}; seed {args.seed}; lr {LR}; "
          "batch 1; "
          f"{args.n_train}/{args.n_test} images; "
          f"cores {os.cpu_count()}; update thread {args.update_thread}; "
          f"quiet prefix {args.quiet or '(none)'}")  # fmt: skip
    ok = True
    while ok:
        progressed = False
        for net in nets:
            for c in contenders:
                done = len(_records(args.state, c, net)["epochs"])
                if done >= target[net]:
                    continue
                upto = min(done + per_call[c, net], target[net])
                ok = _run_call(args, c, net, upto, str(args.peer_python)) and ok
                progressed = True
        if not progressed:
            break
    report(args.state, nets)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
