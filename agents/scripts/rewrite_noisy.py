"""Pick the examples of a selection to send to the rewriter: those whose base-model loss marks them
noisy (above the --noise-pct percentile of their format group within the selection), highest loss
first, and with --free-form the conversation-style and off-format ones too; at most --budget of them.
Then `merge_rewrites.py` puts the rewritten records back."""
import numpy as np
from _common import args, format_ok, group_of, load_pool, signal

a = args({"--picks": {"required": True}, "--noise-pct": {"type": float, "default": 70.0},
          "--free-form": {"action": "store_true", "help": "also the conversation-style examples (no answer-format "
                          "instruction) and those whose answers ignore their format, for a prompt that asks for "
                          "short answers"}})
picks = [line.strip() for line in open(a.picks) if line.strip()]
records = {r["id"]: r for r in load_pool()}
ids_sig, loss = signal("loss.npy")
row = {i: k for k, i in enumerate(ids_sig)}
groups = {}
for i in picks:
    groups.setdefault(group_of(records[i]), []).append(i)
noisy = []
for members in groups.values():
    lv = np.array([loss[row[i]] for i in members])
    cut = np.percentile(lv, a.noise_pct)
    noisy += [(float(v), i) for v, i in zip(lv, members, strict=True) if v > cut]
chosen = [i for _, i in sorted(noisy, reverse=True)]
n_noisy = len(chosen)
if a.free_form:
    marked = set(chosen)
    chosen += [i for i in picks if i not in marked and (group_of(records[i]).endswith("|") or not format_ok(records[i]))]
chosen = chosen[: a.budget]
with open(a.out, "w") as fh:
    fh.write("\n".join(chosen) + "\n")
print(f"{len(chosen)} of {len(picks)} selected examples to rewrite: {n_noisy} marked noisy (loss above "
      f"p{a.noise_pct:g} of their group), {len(chosen) - n_noisy} conversation-style or off-format")
