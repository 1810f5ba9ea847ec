"""Preference pairs (prep input format `preference`): records in the four layouts are rendered
by jinja2 from the models' chat templates with transformers' settings, tokenized by Hugging Face
tokenizers and split into prompt / chosen / rejected as TRL's DPOTrainer does (trl 1.16,
DPOTrainer._prepare_dataset.tokenize_fn, conversational branch: the prompt is tokenized with
add_generation_prompt=True, prompt+chosen and prompt+rejected without; the prompt is the common
token prefix of the three, each response the rest of its conversation, every response token in
the completion mask). tokenize_fn is a closure inside _prepare_dataset, so it cannot be called
on its own: its rule is restated here. The pairs medtune wrote are read back through the C
shard reader (tests/test_prep_pairs) and by this file's own reader of docs/formats.md.

usage: check_preference.py pairs TEMPLATE TOKENIZER   hand-written records, every layout
       check_preference.py shared TEMPLATE TOKENIZER  ../shared/data/medicalgpt_dpo_zh (600 pairs)
       check_preference.py rows                       the rows the DPO batcher gets, against TRL's
                                                      own DataCollatorForPreference (venv-oracle)
       check_preference.py malformed                  counting, locations, strict, refusals"""

import json
import os
import subprocess
import sys
import tempfile

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

import prep_ref as R
from check_chat import TEMPLATES

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fresh_lib import fresh_model  # noqa: E402
from testlib import shared_dir  # noqa: E402

SYSTEM = "You are a careful clinical assistant."


def records():
    """(record, prompt messages, chosen messages, rejected messages) in each layout."""
    u = lambda c: {"role": "user", "content": c}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    s = lambda c: {"role": "system", "content": c}  # noqa: E731
    out = []
    # TRL, plain strings: the prompt is one user message, each response one assistant message.
    r = {"prompt": "What is the first-line drug for uncomplicated hypertension in adults?",
         "chosen": "A thiazide diuretic, ACE inhibitor, ARB or calcium channel blocker, chosen per patient.",
         "rejected": "Always start with a beta blocker."}
    out.append((r, [u(r["prompt"])], [a(r["chosen"])], [a(r["rejected"])]))
    # TRL, conversational: a whole conversation as the prompt.
    p = [s(SYSTEM), u("Can I take ibuprofen with warfarin?"),
         a("It raises the bleeding risk; ask your clinician first."), u("What about paracetamol?")]
    r = {"prompt": p, "chosen": [a("Paracetamol is usually preferred, at the lowest effective dose; "
                                   "regular use can raise the INR, so it should be monitored.")],
         "rejected": [a("Yes, any painkiller is fine.")]}
    out.append((r, p, r["chosen"], r["rejected"]))
    # MedicalGPT: system, history pairs, question, response_chosen / response_rejected.
    r = {"system": SYSTEM, "history": [["What is HbA1c?", "Glycated haemoglobin."]],
         "question": "What does a value of 8% mean?",
         "response_chosen": "It reflects an average glucose of about 10 mmol/L over three months: above target.",
         "response_rejected": "It means the patient does not have diabetes."}
    out.append((r, [s(SYSTEM), u("What is HbA1c?"), a("Glycated haemoglobin."), u(r["question"])],
                [a(r["response_chosen"])], [a(r["response_rejected"])]))
    r = {"question": "Is a fever of 38.5 °C in an adult an emergency?",
         "response_chosen": "Usually not on its own; seek care with a stiff neck, confusion or breathing trouble.",
         "response_rejected": "Yes, always call an ambulance."}
    out.append((r, [u(r["question"])], [a(r["response_chosen"])], [a(r["response_rejected"])]))
    # LLaMA-Factory ShareGPT: {from, value} turns; chosen/rejected as messages or strings.
    r = {"conversations": [{"from": "system", "value": SYSTEM},
                           {"from": "human", "value": "How long should antibiotics for cystitis last?"}],
         "chosen": {"from": "gpt", "value": "In women with uncomplicated cystitis, often 3 to 5 days, depending on the drug."},
         "rejected": {"from": "gpt", "value": "Six weeks."}}
    out.append((r, [s(SYSTEM), u("How long should antibiotics for cystitis last?")],
                [a(r["chosen"]["value"])], [a(r["rejected"]["value"])]))
    r = {"conversations": [{"from": "human", "value": "Name a symptom of hypoglycaemia."}],
         "chosen": "Sweating, tremor or confusion.", "rejected": "Hair loss."}
    out.append((r, [u("Name a symptom of hypoglycaemia.")], [a(r["chosen"])], [a(r["rejected"])]))
    # OpenAI-style messages with a chosen and a rejected assistant message.
    r = {"messages": [u("What does BMI stand for?")], "chosen": a("Body mass index."),
         "rejected": a("Blood metabolic index.")}
    out.append((r, r["messages"], [r["chosen"]], [r["rejected"]]))
    return out


def make_render(kind, bos, eos):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(msg):
        raise ValueError(msg)

    env.globals["raise_exception"] = raise_exception
    tpl = env.from_string(TEMPLATES[kind])

    def render(msgs, gen):
        msgs = [{"role": m["role"], "content": R.clean(m["content"])} for m in msgs]
        return tpl.render(messages=msgs, bos_token=bos, eos_token=eos, add_generation_prompt=gen)
    return render


def common_prefix_length(x, y):
    k = 0
    while k < len(x) and k < len(y) and x[k] == y[k]:
        k += 1
    return k


def trl_pair(render, hf, prompt, chosen, rejected):
    """prompt_ids, chosen_ids, rejected_ids as TRL's tokenize_fn gives them."""
    enc = lambda t: hf.encode(t, add_special_tokens=False).ids  # noqa: E731 (apply_chat_template)
    p = enc(render(prompt, True))
    pc = enc(render(prompt + chosen, False))
    pr = enc(render(prompt + rejected, False))
    n = min(common_prefix_length(p, pc), common_prefix_length(p, pr))
    return p[:n], pc[n:], pr[n:]


def read_pairs_c(out):
    exe = os.path.join(R.env("MEDTUNE_TEST_BIN"), "test_prep_pairs")
    p = subprocess.run([exe, out, "train"], capture_output=True, text=True)
    if p.returncode != 0:
        R.fail(f"test_prep_pairs {out}: exit {p.returncode}: {p.stdout}{p.stderr}")
    return [json.loads(line) for line in p.stdout.splitlines()]


def check_pairs(out, expected, hf):
    """expected: [(prompt_ids, chosen_ids, rejected_ids)] in input order."""
    m, words = R.read_split(out, "train")
    if m["version"] != 2 or m["packing"] != "pairs":
        R.fail(f"manifest: version {m['version']}, packing {m['packing']}; expected 2, pairs")
    if m["splits"]["train"]["n_pairs"] != len(expected):
        R.fail(f"manifest n_pairs {m['splits']['train']['n_pairs']}, {len(expected)} records written")
    docs = R.split_docs(words)
    if len(docs) != 3 * len(expected):
        R.fail(f"{len(docs)} documents in the shards, expected 3 per pair ({3 * len(expected)})")
    via_c = read_pairs_c(out)
    if len(via_c) != len(expected):
        R.fail(f"the C reader returns {len(via_c)} pairs, expected {len(expected)}")
    for i, (want, c) in enumerate(zip(expected, via_c)):
        got = docs[3 * i: 3 * i + 3]
        for k, name in enumerate(("prompt", "chosen", "rejected")):
            toks, trained = got[k]
            want_mask = [0 if k == 0 else 1] * len(want[k])
            if toks != want[k]:
                j = common_prefix_length(toks, want[k])
                R.fail(f"pair {i} {name}: tokens differ at {j}\n medtune:   "
                       f"{hf.decode(toks[:j + 8], skip_special_tokens=False)!r}\n reference: "
                       f"{hf.decode(want[k][:j + 8], skip_special_tokens=False)!r}")
            if trained != want_mask:
                R.fail(f"pair {i} {name}: loss mask {trained} differs from TRL's completion mask")
            if c[2 * k] != toks or c[2 * k + 1] != trained:
                R.fail(f"pair {i} {name}: the C shard reader returns other tokens or mask")


def setup(tok_name, tmp):
    """The staged tokenizer of `tok_name` when ../shared is present, else the stand-in of its
    family trained on the sample data (prep_ref.tokenizers_for)."""
    label, tok_path, json_path = R.tokenizers_for(tok_name, tmp)[-1]
    print(f"tokenizer: {label}")
    return tok_path, json_path, Tokenizer.from_file(json_path)


def special_strings(out, json_path):
    m = json.load(open(os.path.join(out, "manifest.json")))
    added = {t["id"]: t["content"] for t in json.load(open(json_path))["added_tokens"]}
    t = m["tokenizer"]
    return (added.get(t["bos_id"], "") if t["bos_id"] >= 0 else "",
            added.get(t["eos_id"], "") if t["eos_id"] >= 0 else "")


def case_pairs(kind, tok_name):
    tmp = tempfile.mkdtemp(prefix="medtune_pref_")
    tok_path, json_path, hf = setup(tok_name, tmp)
    recs = records()
    path = os.path.join(tmp, "pairs.jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps(r[0], ensure_ascii=False) + "\n" for r in recs)
    out = os.path.join(tmp, "shards")
    summary = json.loads(R.prep(tmp, {"tokenizer": tok_path, "template": kind, "val_fraction": 0,
                                      "inputs": [{"path": path, "format": "preference"}],
                                      "out_dir": out}).stdout)
    if summary["dropped"]["malformed"] or summary["train"].get("pairs") != len(recs):
        R.fail(f"summary: {summary}")
    render = make_render(kind, *special_strings(out, json_path))
    check_pairs(out, [trl_pair(render, hf, p, c, r) for _, p, c, r in recs], hf)
    info = R.run_medtune(["info", out]).stdout
    if f"{len(recs)} pairs" not in info:
        R.fail(f"medtune info does not show the pair count:\n{info}")
    text = R.run_medtune(["prep", os.path.join(tmp, "prep.json")]).stdout  # again, as text
    if f"pairs kept       {len(recs)} (train {len(recs)}, val 0)" not in text:
        R.fail(f"the prep summary does not show the pair count:\n{text}")
    print(f"OK: {len(recs)} pairs in 4 layouts, {kind} on {tok_name}: prompt/chosen/rejected tokens and "
          "masks equal TRL's tokenization, through the C reader too")


def shared_records(d):
    """The staged files' records as (prompt, chosen, rejected) messages."""
    u = lambda c: {"role": "user", "content": c}  # noqa: E731
    a = lambda c: {"role": "assistant", "content": c}  # noqa: E731
    role = {"human": "user", "gpt": "assistant", "system": "system"}
    out = []
    for line in open(os.path.join(d, "dpo_zh_500_sharegpt.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        p = [{"role": role[t["from"]], "content": t["value"]} for t in r["conversations"]]
        out.append((p, [a(r["chosen"])], [a(r["rejected"])]))
    for line in open(os.path.join(d, "medical_reward_test.jsonl"), encoding="utf-8"):
        r = json.loads(line)
        out.append(([u(r["question"])], [a(r["response_chosen"])], [a(r["response_rejected"])]))
    return out


def case_shared(kind, tok_name):
    d = os.path.join(shared_dir(), "data", "medicalgpt_dpo_zh")
    if not os.path.isdir(d):
        R.skip(f"{d} is absent (the pairs case covers the layouts with written records)")
    tmp = tempfile.mkdtemp(prefix="medtune_pref_shared_")
    tok_path, json_path, hf = setup(tok_name, tmp)
    out = os.path.join(tmp, "shards")
    inputs = [{"path": os.path.join(d, f), "format": "preference"}
              for f in ("dpo_zh_500_sharegpt.jsonl", "medical_reward_test.jsonl")]
    summary = json.loads(R.prep(tmp, {"tokenizer": tok_path, "template": kind, "val_fraction": 0,
                                      "dedup": False, "inputs": inputs, "out_dir": out}).stdout)
    recs = shared_records(d)
    d_ = summary["dropped"]
    if d_["malformed"] or d_["empty"] or summary["documents_kept"] != len(recs):
        R.fail(f"expected all {len(recs)} staged pairs kept: {summary}")
    render = make_render(kind, *special_strings(out, json_path))
    check_pairs(out, [trl_pair(render, hf, p, c, r) for p, c, r in recs], hf)
    print(f"OK: {len(recs)} staged pairs (MedicalGPT, ShareGPT layouts), {kind} on {tok_name}: equal TRL's")


# Runs in the oracle venv (trl 1.16): TRL's own collator on each pair, one pair per batch.
COLLATE = r'''
import json, sys
from trl.trainer.dpo_trainer import DataCollatorForPreference
out = []
for max_length, pad, pairs in json.load(sys.stdin):
    c = DataCollatorForPreference(pad_token_id=pad, max_length=max_length, truncation_mode="keep_start")
    rows = []
    for p, ch, rj in pairs:
        if len(p) >= max_length:  # DPOTrainer drops these before collating (keep_start)
            rows.append(None)
            continue
        b = c([{"prompt_ids": p, "chosen_ids": ch, "rejected_ids": rj}])
        rows.append([[row[:int(a.sum())].tolist() for row, a in zip(b["input_ids"], b["attention_mask"])],
                     [row[:int(a.sum())].tolist() for row, a in zip(b["completion_mask"], b["attention_mask"])]])
    out.append(rows)
json.dump(out, sys.stdout)
'''


def case_rows():
    oracle = os.path.join(R.env("MEDTUNE_CACHE"), "venv-oracle", "bin", "python")
    if not os.path.exists(oracle):
        R.skip(f"{oracle} (trl 1.16) is absent: TRL's collator is the reference here")
    tmp = tempfile.mkdtemp(prefix="medtune_pref_rows_")
    tok_path, _, _ = setup("qwen2.5", tmp)
    path = os.path.join(tmp, "pairs.jsonl")
    with open(path, "w") as f:
        f.writelines(json.dumps(r[0]) + "\n" for r in records())
    out = os.path.join(tmp, "shards")
    R.prep(tmp, {"tokenizer": tok_path, "template": "chatml", "val_fraction": 0,
                 "inputs": [{"path": path, "format": "preference"}], "out_dir": out})
    m, words = R.read_split(out, "train")
    pad = m["tokenizer"]["eos_id"]
    docs = R.split_docs(words)
    pairs = [[docs[3 * i][0], docs[3 * i + 1][0], docs[3 * i + 2][0]] for i in range(len(docs) // 3)]
    prompts = sorted(len(p) for p, _, _ in pairs)
    # Windows from inside the shortest prompt (every pair skipped) through truncated responses
    # to one longer than every row.
    seq_lens = sorted({prompts[0] - 1, prompts[0], prompts[len(prompts) // 2] + 3, prompts[-1] + 5,
                       max(len(p) + max(len(c), len(r)) for p, c, r in pairs) + 2})
    job = [[T + 1, pad, pairs] for T in seq_lens]
    p = subprocess.run([oracle, "-c", COLLATE], input=json.dumps(job), capture_output=True, text=True)
    if p.returncode != 0:
        R.fail(f"TRL's collator failed: {p.stderr[-2000:]}")
    ref = json.loads(p.stdout)
    exe = os.path.join(R.env("MEDTUNE_TEST_BIN"), "test_prep_pairs")
    skipped = truncated = 0
    for T, want in zip(seq_lens, ref):
        c = subprocess.run([exe, out, "train", "--rows", str(T)], capture_output=True, text=True)
        if c.returncode != 0:
            R.fail(f"test_prep_pairs --rows {T}: {c.stdout}{c.stderr}")
        got = [json.loads(line) for line in c.stdout.splitlines()]
        for i, (g, w) in enumerate(zip(got, want)):
            if w is None or g is None:
                if g is not w:
                    R.fail(f"seq_len {T}, pair {i}: medtune {'skips' if g is None else 'keeps'} it, TRL does not")
                skipped += 1
                continue
            for r in range(2):
                toks, mask = g[2 * r], g[2 * r + 1]
                ids, cm = w[0][r], w[1][r]
                n = len(ids)
                truncated += n == T + 1
                if toks[:n] != ids or any(t != pad for t in toks[n:]):
                    R.fail(f"seq_len {T}, pair {i}, row {r}: tokens {toks} differ from TRL's {ids}")
                # mask[j] is the target j+1: TRL's completion_mask shifted by one, 0 on padding.
                if mask != (cm[1:] + [0] * (T + 1 - n)):
                    R.fail(f"seq_len {T}, pair {i}, row {r}: mask {mask} differs from TRL's {cm}")
    if not skipped or not truncated:
        R.fail(f"the windows chosen do not exercise skipping ({skipped}) and truncation ({truncated})")
    print(f"OK: pair rows for seq_len {seq_lens} equal TRL's DataCollatorForPreference (keep_start): "
          f"{skipped} pairs skipped, {truncated} rows truncated")


def case_malformed():
    tmp = tempfile.mkdtemp(prefix="medtune_pref_bad_")
    tok_path, _, _ = setup("gpt2", tmp)
    lines = [
        json.dumps({"prompt": "Define tachycardia.", "chosen": "A heart rate above 100 per minute.",
                    "rejected": "A slow heart."}),
        '{"prompt": "broken",',
        json.dumps({"prompt": "Define bradycardia.", "chosen": "Below 60 per minute."}),
        json.dumps({"text": "not a pair"}),
        json.dumps({"messages": [{"role": "user", "content": "q"}],
                    "chosen": {"role": "user", "content": "a"}, "rejected": "b"}),
        json.dumps({"question": "Is this empty?", "response_chosen": "", "response_rejected": "No."}),
        json.dumps({"question": "Q", "history": [["only one"]], "response_chosen": "a",
                    "response_rejected": "b"}),
    ]
    path = os.path.join(tmp, "bad.jsonl")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = os.path.join(tmp, "shards")
    cfg = {"tokenizer": tok_path, "template": "alpaca", "val_fraction": 0,
           "inputs": [{"path": path, "format": "preference"}], "out_dir": out}
    s = json.loads(R.prep(tmp, cfg).stdout)
    want = {"records_read": 7, "documents_kept": 1}
    got = {k: s[k] for k in want}
    if got != want or s["dropped"]["malformed"] != 5 or s["dropped"]["empty"] != 1:
        R.fail(f"counts {s}, expected 7 read, 5 malformed, 1 empty, 1 kept")
    if s["first_malformed"] != f"{path}:2: bad JSON":
        R.fail(f"first_malformed {s['first_malformed']!r}")
    # strict: the first malformed record is one error line naming file:line, exit 1.
    p = R.prep(tmp, dict(cfg, strict=True, out_dir=os.path.join(tmp, "strict")), expect_rc=1)
    err = p.stderr.strip().splitlines()
    if len(err) != 1 or not err[0].startswith(f"medtune: error: {path}:2: bad JSON"):
        R.fail(f"strict: expected one error line for {path}:2, got {p.stderr!r}")
    for n, what in ((3, "no field 'rejected'"), (4, "not a preference record"),
                    (5, "'chosen' does not end with an assistant message"),
                    (7, "history[0] is not a [user, assistant] pair")):
        one = os.path.join(tmp, f"one{n}.jsonl")
        with open(one, "w") as f:
            f.write(lines[n - 1] + "\n")
        p = R.prep(tmp, dict(cfg, strict=True, inputs=[{"path": one, "format": "preference"}],
                             out_dir=os.path.join(tmp, f"s{n}")), expect_rc=1)
        if f"{one}:1: {what}" not in p.stderr:
            R.fail(f"record {n}: expected '{one}:1: {what}', got {p.stderr!r}")
    # Pairs and documents never share a directory.
    mixed = dict(cfg, inputs=[{"path": path, "format": "preference"}, {"path": path, "format": "jsonl"}],
                 out_dir=os.path.join(tmp, "mixed"))
    p = R.prep(tmp, mixed, expect_rc=1)
    if "inputs.1: preference inputs cannot be mixed" not in p.stderr or len(p.stderr.strip().splitlines()) != 1:
        R.fail(f"mixed inputs: {p.stderr!r}")
    # Windows of a pair directory are refused with one line until DPO/ORPO read pairs.
    exe = os.path.join(R.env("MEDTUNE_TEST_BIN"), "test_prep_reader")
    p = subprocess.run([exe, out, "train", "64"], capture_output=True, text=True)
    if p.returncode != 1 or "holds preference pairs" not in p.stdout:
        R.fail(f"the window reader accepted a pair directory: exit {p.returncode}: {p.stdout[:300]}")
    # ... and `medtune train` refuses them with one line (a random-weight model, fresh_lib).
    model = fresh_model(os.path.join(tmp, "model"))
    tiny = os.path.join(tmp, "tiny")
    R.prep(tmp, dict(cfg, tokenizer=model, template="chatml", out_dir=tiny))
    train = os.path.join(tmp, "train.json")
    with open(train, "w") as f:
        json.dump({"model": model, "data": {"train": tiny}, "lora": {"r": 2, "alpha": 4, "targets": ["q_proj"]},
                   "batch": {"micro_batch": 1, "seq_len": 32, "grad_accum": 1}, "steps": 1,
                   "out_dir": os.path.join(tmp, "run")}, f)
    p = R.run_medtune(["train", train], expect_rc=1)
    err = p.stderr.strip().splitlines()
    if len(err) != 1 or not err[0].startswith(f"medtune: error: {tiny}: holds preference pairs"):
        R.fail(f"train on a pair directory: expected one refusal line, got {p.stderr!r}")
    print("OK: malformed preference records counted and located; strict, mixing and windows refused")


def main():
    case = sys.argv[1]
    if case == "pairs":
        case_pairs(sys.argv[2], sys.argv[3])
    elif case == "shared":
        case_shared(sys.argv[2], sys.argv[3])
    elif case == "rows":
        case_rows()
    elif case == "malformed":
        case_malformed()
    else:
        R.fail(f"unknown case {case}")


if __name__ == "__main__":
    main()
