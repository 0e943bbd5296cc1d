"""How much of a picture the MiniVQA base model's image tokens carry: linear probes on the projected
image features (what the language model sees) for each grid cell's colour, shape and size (or
"empty") and the object count, against the majority class and against the same architecture at
random init. It tells whether the vision side of a world's base model carries what the benchmarks
ask about; whether a fine-tune learns to use it is what the fidelity table shows. Run by hand on a
built world: `python benchmarks/base_perception.py [--preset default] [--task-arg device=cuda]`."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def image_features(model, pixels: torch.Tensor, batch: int = 500) -> torch.Tensor:
    """Projected image tokens, flattened per picture (N, tokens * hidden)."""
    from curbench_env.envs.llava_pipeline import model_device

    out = []
    with torch.no_grad():
        for i in range(0, len(pixels), batch):
            f = model.get_image_features(pixel_values=pixels[i:i + batch].to(model_device(model)))
            f = getattr(f, "pooler_output", f)  # transformers 5: an output object; the projected tokens here
            f = torch.stack(list(f)) if isinstance(f, (list, tuple)) else f
            out.append(f.reshape(f.shape[0], -1).float().cpu())
    return torch.cat(out)


def probe(x_tr: torch.Tensor, y_tr: np.ndarray, x_te: torch.Tensor, y_te: np.ndarray, steps: int = 300) -> float:
    """Test accuracy of a softmax-regression probe trained with L-BFGS (standardised features)."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    classes = int(max(y_tr.max(), y_te.max())) + 1
    lin = torch.nn.Linear(a.shape[1], classes)
    opt = torch.optim.LBFGS(lin.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    yt = torch.from_numpy(y_tr)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lin(a), yt) + 1e-3 * lin.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return float((lin(b).argmax(1).numpy() == y_te).mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="default")
    ap.add_argument("--task-arg", action="append", default=[], help="KEY=VALUE for the task, e.g. device=cuda")
    ap.add_argument("--scenes", type=int, default=4000, help="generated pictures (3/4 train the probes, 1/4 test)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    from curbench_env.envs.minivqa import model as M
    from curbench_env.envs.minivqa.scenes import COLOURS, POSITIONS, SHAPES, SIZES, random_scene, render
    from curbench_env.envs.minivqa.task import MiniVQATask

    from curbench_env.cli import task_kwargs

    try:
        task = MiniVQATask(**task_kwargs(a.preset, a.task_arg))
    except (TypeError, ValueError) as e:  # a malformed or unknown --task-arg
        ap.error(str(e))
    task.prepare()
    device = task.device
    base, tok, cfg = M.load_base(task.root / "base_model")
    base.to(device)
    rand = M.build_model(cfg, len(tok), base.config.image_token_index, tok.pad_token_id, seed=a.seed).to(device).eval()

    rng = np.random.default_rng(10_000 + a.seed)
    scenes = [random_scene(rng) for _ in range(a.scenes)]
    pixels = M.pixel_tensor(np.stack([render(s, rng) for s in scenes]))
    targets: dict[str, np.ndarray] = {"count": np.array([len(s.objects) - 1 for s in scenes])}
    for pos in POSITIONS:
        for name, values in (("colour", list(COLOURS)), ("shape", list(SHAPES)), ("size", list(SIZES))):
            targets[f"{pos} {name}"] = np.array(
                [0 if (o := s.at(pos)) is None else 1 + values.index(getattr(o, name)) for s in scenes])

    n_tr = a.scenes * 3 // 4
    feats = {"random init": image_features(rand, pixels), "base model": image_features(base, pixels)}
    rows = []
    for target, y in targets.items():
        majority = float(np.mean(y[n_tr:] == np.bincount(y[:n_tr]).argmax()))
        accs = {k: probe(f[:n_tr], y[:n_tr], f[n_tr:], y[n_tr:]) for k, f in feats.items()}
        rows.append({"target": target, "majority": majority, **accs})
        print(f"{target:24s} majority {100 * majority:5.1f}  random init {100 * accs['random init']:5.1f}  "
              f"base model {100 * accs['base model']:5.1f}", flush=True)
    mean = {k: float(np.mean([r[k] for r in rows])) for k in ("majority", "random init", "base model")}
    print("mean over targets        " + "  ".join(f"{k} {100 * v:5.1f}" for k, v in mean.items()))
    print(json.dumps({"world": task.preset.fingerprint(), "device": device, "scenes": a.scenes, "mean": mean}))


if __name__ == "__main__":
    main()
