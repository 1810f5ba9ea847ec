"""phi3 and gpt2 against transformers and PEFT themselves (issue 13). Random small models
written by transformers' save_pretrained (sizes that are not multiples of 8; phi3 with GQA,
partial rotary and LongRoPE on both sides of original_max_position_embeddings, and the default
rope; gpt2 plain and with BioMedLM's scale_attn_by_inverse_layer_idx) and a PEFT adapter with
random A and B on the models' own module names (qkv_proj, o_proj, gate_up_proj, down_proj;
c_attn, c_proj, c_fc with fan_in_fan_out). medtune (tests/test_arch_run.c) must give:
logits and loss within 1e-5 of transformers' fp32 forward, every LoRA gradient within 1e-4
relative of PEFT + autograd (float64), and after 3 AdamW steps an exported adapter that PEFT
loads onto the transformers model with medtune's logits within 1e-5. The KV-cache decoder
(generate, eval), fed one token at a time, gives each position the logits of transformers'
forward over the prefix within 1e-5 (for phi3's LongRoPE: the switch to the long factors
past original_max_position_embeddings recomputes the cache, as transformers' generation).
A GGUF of each model, written with gguf-py as llama.cpp's convert_hf_to_gguf.py does, gives
the logits of the HF directory within 1e-5; its F16 form (fused matrices held as stored, as
row views) those of the model with its 2-D weights rounded to F16. `medtune merge` of the
trained adapter gives a directory whose transformers logits equal PEFT's, and merged into the
GGUF base a GGUF file whose medtune logits equal the base's with the adapter; `medtune export
--format gguf` writes llama.cpp's tensor names (attn_qkv, ffn_up, attn_output, ffn_down) whose
scale * B A is PEFT's delta in the GGUF base's [out, in] layout.
The transformers side runs in the oracle venv ($MEDTUNE_ORACLE_VENV or
$MEDTUNE_CACHE/venv-oracle, tests/arch/arch2_oracle.py); the test skips when it is absent."""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
from testlib import env, fail, skip, work_dir  # noqa: E402

ORACLE = os.path.join(HERE, "arch2_oracle.py")
CASES = {"phi3_longrope": 2, "phi3_default": 1, "gpt2_plain": 1, "gpt2_biomedlm": 1}


def oracle_python():
    venv = env("MEDTUNE_ORACLE_VENV", os.path.join(env("MEDTUNE_CACHE", ""), "venv-oracle"))
    py = os.path.join(venv, "bin", "python")
    if not os.path.exists(py):
        skip(f"the oracle venv with transformers and peft is absent ({py}; set "
             "MEDTUNE_ORACLE_VENV)")
    p = subprocess.run([py, "-c", "import transformers, peft, torch"], capture_output=True,
                       text=True)
    if p.returncode:
        skip(f"{py} cannot import transformers/peft/torch: {p.stderr.strip()[-300:]}")
    return py


def call(args):
    p = subprocess.run(args, capture_output=True, text=True)
    sys.stdout.write(p.stdout)
    if p.returncode:
        fail(f"{' '.join(args)} exited {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")


def refuse_targets(runner, d, targets, valid):
    """An adapter naming modules the model lacks is refused with one line naming the valid
    ones (the same check guards lora.targets in `medtune train`)."""
    bad = os.path.join(d, "adapter_bad")
    shutil.rmtree(bad, ignore_errors=True)
    shutil.copytree(os.path.join(d, "adapter"), bad)
    cfg_path = os.path.join(bad, "adapter_config.json")
    cfg = json.load(open(cfg_path))
    cfg["target_modules"] = targets
    json.dump(cfg, open(cfg_path, "w"))
    p = subprocess.run([runner, "forward", os.path.join(d, "model"), bad,
                        os.path.join(d, "batch0.safetensors"), os.path.join(d, "bad.safetensors")],
                       capture_output=True, text=True)
    if p.returncode == 0 or f"(valid: {valid})" not in p.stdout + p.stderr:
        fail(f"target_modules {targets} on {d}: expected a refusal naming '{valid}', got rc "
             f"{p.returncode}: {p.stdout[-500:]} {p.stderr[-500:]}")
    print(f"refused {targets}: valid {valid}")


def gguf_merge(d, arch):
    """A phi3/gpt2 GGUF base merges into a GGUF file: its logits through medtune equal the
    base's with the trained adapter (test_export_logits compare, 1e-4 max |diff|; the adapter
    itself is checked against PEFT by the oracle). Into a Hugging Face directory it is refused
    with one error line and no output."""
    medtune = env("MEDTUNE_BIN", "medtune")
    base, trained = os.path.join(d, "model.gguf"), os.path.join(d, "trained")
    call([medtune, "merge", base, trained, os.path.join(d, "merged.gguf"), "--type", "f32"])
    call([os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_export_logits"), "compare", base,
          trained, os.path.join(d, "merged.gguf"), "1e-4"])
    out = os.path.join(d, "merged_from_gguf")
    p = subprocess.run([medtune, "merge", base, trained, out], capture_output=True, text=True)
    want = f"merging a {arch} GGUF base into a Hugging Face directory is unsupported"
    lines = p.stderr.strip().splitlines()
    if p.returncode != 1 or len(lines) != 1 or not lines[0].startswith("medtune: error: ") \
            or want not in lines[0] or os.path.exists(out):
        fail(f"merge of {base} into {out}: exit {p.returncode}, stderr {p.stderr[-500:]!r}; "
             f"expected exit 1 and one line with '{want}', no output")
    print(f"refused merge into a directory: {lines[0]}")


def main():
    py = oracle_python()
    work = work_dir("arch", "phi3_gpt2")
    call([py, ORACLE, "make", work])
    runner = os.path.join(env("MEDTUNE_TEST_BIN", "."), "test_arch_run")
    for case, n_batches in CASES.items():
        d = os.path.join(work, case)
        for j in range(n_batches):
            call([runner, "forward", os.path.join(d, "model"), os.path.join(d, "adapter"),
                  os.path.join(d, f"batch{j}.safetensors"), os.path.join(d, f"out{j}.safetensors")])
        call([runner, "forward", os.path.join(d, "model.gguf"), os.path.join(d, "adapter"),
              os.path.join(d, "batch0.safetensors"), os.path.join(d, "gguf_out0.safetensors")])
        call([runner, "forward", os.path.join(d, "model_f16.gguf"), os.path.join(d, "adapter"),
              os.path.join(d, "batch0.safetensors"), os.path.join(d, "gguf_f16_out0.safetensors")])
        call([runner, "decode", os.path.join(d, "model"), os.path.join(d, "adapter"),
              os.path.join(d, "batch0.safetensors"), os.path.join(d, "decode.safetensors")])
        call([runner, "train", os.path.join(d, "model"), os.path.join(d, "adapter"),
              os.path.join(d, "batch0.safetensors"), "3", "0.01", os.path.join(d, "trained"),
              os.path.join(d, "trained_out.safetensors")])
        # The CLI on the trained adapter: HF merge, GGUF adapter export.
        call([env("MEDTUNE_BIN", "medtune"), "merge", os.path.join(d, "model"),
              os.path.join(d, "trained"), os.path.join(d, "merged")])
        call([env("MEDTUNE_BIN", "medtune"), "export", os.path.join(d, "trained"),
              os.path.join(d, "adapter.gguf"), "--format", "gguf", "--model",
              os.path.join(d, "model")])
    refuse_targets(runner, os.path.join(work, "phi3_default"), ["q_proj", "v_proj"],
                   "o_proj down_proj qkv_proj gate_up_proj")
    refuse_targets(runner, os.path.join(work, "gpt2_plain"), ["o_proj"], "c_proj c_fc c_attn")
    for case in ("phi3_longrope", "phi3_default", "gpt2_plain"):
        gguf_merge(os.path.join(work, case), case.split("_")[0])
    call([py, ORACLE, "check", work])


if __name__ == "__main__":
    main()
