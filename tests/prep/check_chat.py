"""Chat templates and loss masks: conversations (alpaca, sharegpt, messages inputs written
here) are rendered by jinja2 from the models' real chat templates, with transformers'
settings (trim_blocks, lstrip_blocks), tokenized by Hugging Face tokenizers, and compared
with medtune's shards: the tokens must be identical and the trained tokens exactly those
overlapping an assistant answer and its closing token.

Each case runs on a tokenizer of the TOKENIZER's family trained on the sample data (with its
chat markers as special tokens), then on the real tokenizer when present: the staged one of
$MEDTUNE_SHARED (phi-3-mini with its own tokenizer_config.json and template; qwen3 is Qwen2.5's
vocabulary with Qwen3's added tokens), Gemma 3's GGUF of $MEDTUNE_CACHE.

The gemma, qwen3 and phi3 templates are the original files TRL 1.16.0 ships
($MEDTUNE_CACHE/chat_templates/, tools/fetch_tokenizer_files.sh) when present, else the copies
below; `auto-*` cases put that text in the tokenizer's config (or GGUF) for medtune to recognise.

usage: check_chat.py TEMPLATE TOKENIZER     (TEMPLATE auto-qwen = "auto" on Qwen2.5)"""

import functools
import json
import os
import sys
import tempfile

from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer

import prep_ref as R
from prep_lib import conversations

# chat_template strings as published in the models' tokenizer_config.json:
# chatml (teknium/OpenHermes and the transformers docs), meta-llama/Llama-2-7b-chat-hf,
# meta-llama/Meta-Llama-3-8B-Instruct, HuggingFaceH4/zephyr-7b-beta, google/gemma-3-*-it (and
# MedGemma), Qwen/Qwen3-4B.
TEMPLATES = {
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    "gemma": "{{ bos_token }}\n{%- if messages[0]['role'] == 'system' -%}\n    {%- if messages[0]['content'] is string -%}\n        {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}\n    {%- else -%}\n        {%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}\n    {%- endif -%}\n    {%- set loop_messages = messages[1:] -%}\n{%- else -%}\n    {%- set first_user_prefix = \"\" -%}\n    {%- set loop_messages = messages -%}\n{%- endif -%}\n{%- for message in loop_messages -%}\n    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}\n        {{ raise_exception(\"Conversation roles must alternate user/assistant/user/assistant/...\") }}\n    {%- endif -%}\n    {%- if (message['role'] == 'assistant') -%}\n        {%- set role = \"model\" -%}\n    {%- else -%}\n        {%- set role = message['role'] -%}\n    {%- endif -%}\n    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else \"\") }}\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}\n    {%- elif message['content'] is iterable -%}\n        {%- for item in message['content'] -%}\n            {%- if item['type'] == 'image' -%}\n                {{ '<start_of_image>' }}\n            {%- elif item['type'] == 'text' -%}\n                {{ item['text'] | trim }}\n            {%- endif -%}\n        {%- endfor -%}\n    {%- else -%}\n        {{ raise_exception(\"Invalid content type\") }}\n    {%- endif -%}\n    {{ '<end_of_turn>\\n' }}\n{%- endfor -%}\n{%- if add_generation_prompt -%}\n    {{'<start_of_turn>model\\n'}}\n{%- endif -%}\n",
    "qwen3": "{%- if tools %}\n    {{- '<|im_start|>system\\n' }}\n    {%- if messages[0].role == 'system' %}\n        {{- messages[0].content + '\\n\\n' }}\n    {%- endif %}\n    {{- \"# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>\" }}\n    {%- for tool in tools %}\n        {{- \"\\n\" }}\n        {{- tool | tojson }}\n    {%- endfor %}\n    {{- \"\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\\"name\\\": <function-name>, \\\"arguments\\\": <args-json-object>}\\n</tool_call><|im_end|>\\n\" }}\n{%- else %}\n    {%- if messages[0].role == 'system' %}\n        {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}\n    {%- endif %}\n{%- endif %}\n{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}\n{%- for message in messages[::-1] %}\n    {%- set index = (messages|length - 1) - loop.index0 %}\n    {%- if ns.multi_step_tool and message.role == \"user\" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}\n        {%- set ns.multi_step_tool = false %}\n        {%- set ns.last_query_index = index %}\n    {%- endif %}\n{%- endfor %}\n{%- for message in messages %}\n    {%- if message.content is string %}\n        {%- set content = message.content %}\n    {%- else %}\n        {%- set content = '' %}\n    {%- endif %}\n    {%- if (message.role == \"user\") or (message.role == \"system\" and not loop.first) %}\n        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}\n    {%- elif message.role == \"assistant\" %}\n        {%- set reasoning_content = '' %}\n        {%- if message.reasoning_content is string %}\n            {%- set reasoning_content = message.reasoning_content %}\n        {%- else %}\n            {%- if '</think>' in content %}\n                {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}\n                {%- set content = content.split('</think>')[-1].lstrip('\\n') %}\n            {%- endif %}\n        {%- endif %}\n        {%- if loop.index0 > ns.last_query_index %}\n            {%- if loop.last or (not loop.last and reasoning_content) %}\n                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}\n            {%- else %}\n                {{- '<|im_start|>' + message.role + '\\n' + content }}\n            {%- endif %}\n        {%- else %}\n            {{- '<|im_start|>' + message.role + '\\n' + content }}\n        {%- endif %}\n        {%- if message.tool_calls %}\n            {%- for tool_call in message.tool_calls %}\n                {%- if (loop.first and content) or (not loop.first) %}\n                    {{- '\\n' }}\n                {%- endif %}\n                {%- if tool_call.function %}\n                    {%- set tool_call = tool_call.function %}\n                {%- endif %}\n                {{- '<tool_call>\\n{\"name\": \"' }}\n                {{- tool_call.name }}\n                {{- '\", \"arguments\": ' }}\n                {%- if tool_call.arguments is string %}\n                    {{- tool_call.arguments }}\n                {%- else %}\n                    {{- tool_call.arguments | tojson }}\n                {%- endif %}\n                {{- '}\\n</tool_call>' }}\n            {%- endfor %}\n        {%- endif %}\n        {{- '<|im_end|>\\n' }}\n    {%- elif message.role == \"tool\" %}\n        {%- if loop.first or (messages[loop.index0 - 1].role != \"tool\") %}\n            {{- '<|im_start|>user' }}\n        {%- endif %}\n        {{- '\\n<tool_response>\\n' }}\n        {{- content }}\n        {{- '\\n</tool_response>' }}\n        {%- if loop.last or (messages[loop.index0 + 1].role != \"tool\") %}\n            {{- '<|im_end|>\\n' }}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|im_start|>assistant\\n<think>\\n' }}\n{%- endif %}",
}

# microsoft/Phi-3-mini-4k-instruct (as in ../shared/tokenizers/phi-3-mini/tokenizer_config.json).
TEMPLATES["phi3"] = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
# google/gemma-2-*-it and gemma-*-it (one template): no system message.
TEMPLATES["gemma2"] = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
REAL_FILES = {"gemma": "gemma3.jinja", "gemma2": "gemma.jinja", "qwen3": "qwen3.jinja", "phi3": "phi3.jinja"}


@functools.lru_cache(maxsize=None)
def template_text(kind):
    """The original template file when fetched, else the copy in TEMPLATES."""
    name = REAL_FILES.get(kind)
    path = os.path.join(os.environ.get("MEDTUNE_CACHE", ""), "chat_templates", name or "")
    if name and os.path.exists(path):
        print(f"{kind}: template {path} (TRL 1.16.0's original)")
        return open(path, encoding="utf-8").read()
    if name:
        print(f"note: {path} is absent (tools/fetch_tokenizer_files.sh): the copy in this file")
    return TEMPLATES[kind]


# Qwen3 answers with reasoning: the final one keeps its think block (trained), an earlier one
# loses it (the template drops reasoning before the last user query).
QWEN3_REASONING = {"messages": [
    {"role": "user", "content": "Is a fever of 38.5 C in an adult an emergency?"},
    {"role": "assistant", "content": "<think>\nOne reading, no other signs.\n</think>\n\nUsually not on its own."},
    {"role": "user", "content": "And with a stiff neck?"},
    {"role": "assistant", "content": "<think>\nNeck stiffness with fever suggests meningitis.\n</think>\n\nYes: seek care at once."}]}

ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further "
                "context. Write a response that appropriately completes the request.")
ALPACA_NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately "
                   "completes the request.")

A0, A1 = "\ue000", "\ue001"  # answer markers, removed after rendering


def render(template, conv, bos, eos, adds_bos, default_jinja=None):
    """Rendered text with the answers' spans [(start, end)] (answer text only)."""
    msgs = []
    for role, content, inp in conv:
        content = R.clean(content)
        if template != "alpaca" and inp:
            content = content + "\n\n" + R.clean(inp)
        if role == "assistant" and "</think>" in content:
            # Qwen3 reasoning: the answer starts at the reasoning when the template keeps it,
            # at the text after </think> when it drops it (the first surviving A0 counts).
            head, tail = content.split("</think>", 1)
            head = head.replace("<think>\n", "<think>\n" + A0, 1)
            rest = tail.lstrip("\n")
            content = head + "</think>" + tail[:len(tail) - len(rest)] + A0 + rest + A1
        elif role == "assistant":
            content = A0 + content + A1
        msgs.append({"role": role, "content": content, "input": inp})
    if template == "alpaca":
        text = bos if adds_bos else ""
        first = 0
        if msgs[0]["role"] == "system":
            text += msgs[0]["content"]
            first = 1
        else:
            text += ALPACA_INPUT if msgs[0]["input"] else ALPACA_NO_INPUT
        for m in msgs[first:]:
            if m["role"] == "assistant":
                text += m["content"] + eos
            else:
                text += "\n\n### Instruction:\n" + m["content"]
                if m["input"]:
                    text += "\n\n### Input:\n" + R.clean(m["input"])
                text += "\n\n### Response:\n"
    else:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

        def raise_exception(msg):
            raise ValueError(msg)

        env.globals["raise_exception"] = raise_exception
        tpl = env.from_string(default_jinja or template_text(template))
        text = tpl.render(messages=[{"role": m["role"], "content": m["content"]} for m in msgs],
                          bos_token=bos, eos_token=eos, add_generation_prompt=False)
    spans, out, i, start = [], [], 0, None
    for ch in text:
        if ch == A0:
            start = i if start is None else start
        elif ch == A1:
            spans.append((start, i))
            start = None
        else:
            out.append(ch)
            i += 1
    return "".join(out), spans


def main():
    template, tok_name = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="medtune_prep_chat_")
    # The trained Qwen2.5-family stand-in carries a chat template for `auto` to recognise.
    kind = {"auto-gemma2": "gemma2"}.get(template) or \
        {"qwen2.5": "chatml", "gemma3": "gemma", "qwen3": "qwen3", "phi-3-mini": "phi3"}.get(tok_name)
    chat_template = template_text(kind) if kind else None
    for i, (label, tok_path, json_path) in enumerate(R.tokenizers_for(tok_name, tmp, chat_template)):
        work = os.path.join(tmp, str(i))
        os.makedirs(work)
        check(template, label, tok_path, json_path, work)


def check(template, tok_name, tok_path, json_path, tmp):
    hf = Tokenizer.from_file(json_path)
    alpaca, sharegpt, messages, convs = conversations()
    kind = {"auto-qwen": "chatml", "auto-gemma": "gemma", "auto-gemma2": "gemma", "auto-qwen3": "qwen3",
            "auto-phi3": "phi3"}.get(template, template)
    if kind == "qwen3":
        messages.append(QWEN3_REASONING)
        convs.append([(t["role"], t["content"], None) for t in QWEN3_REASONING["messages"]])
    with open(os.path.join(tmp, "a.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in alpaca)
    with open(os.path.join(tmp, "s.json"), "w") as f:
        json.dump(sharegpt, f, indent=2)  # a JSON array spread over lines
    with open(os.path.join(tmp, "m.jsonl"), "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in messages)
    inputs = [{"path": os.path.join(tmp, "a.jsonl"), "format": "alpaca"},
              {"path": os.path.join(tmp, "s.json"), "format": "sharegpt"},
              {"path": os.path.join(tmp, "m.jsonl"), "format": "messages"}]
    out = os.path.join(tmp, "shards")
    name = "auto" if template.startswith("auto") else template
    summary = json.loads(R.prep(tmp, {"tokenizer": tok_path, "inputs": inputs, "template": name,
                                      "val_fraction": 0, "out_dir": out}).stdout)
    m, words = R.read_split(out, "train")
    tok_info = m["tokenizer"]
    if m["packing"] != "whole":
        R.fail(f"chat shards must be packed whole, manifest says {m['packing']}")
    # Token strings as HF passes them to Jinja: the added token's content.
    added = {t["id"]: t["content"] for t in json.load(open(json_path))["added_tokens"]}
    stripping = {t["id"] for t in json.load(open(json_path))["added_tokens"] if t["lstrip"] or t["rstrip"]}
    bos = added.get(tok_info["bos_id"], "") if tok_info["bos_id"] >= 0 else ""
    eos = added.get(tok_info["eos_id"], "") if tok_info["eos_id"] >= 0 else ""
    jinja = None
    if template.startswith("auto-"):
        cfg = json.load(open(os.path.join(os.path.dirname(json_path), "tokenizer_config.json")))
        jinja = cfg["chat_template"]
        if summary.get("template") != kind:
            R.fail(f"auto on {tok_name} chose {summary.get('template')}, expected {kind}")
    closing = {"chatml": "<|im_end|>", "llama2": " " + eos, "llama3": "<|eot_id|>",
               "zephyr": eos, "alpaca": eos, "gemma": "<end_of_turn>",
               "qwen3": "<|im_end|>", "phi3": "<|end|>"}[kind]
    # Conversations the template refuses (raise_exception: Gemma 2 and a system message) are
    # the ones medtune must drop as malformed.
    rendered = []
    for conv in convs:
        try:
            rendered.append(render(kind, conv, bos, eos, tok_info["adds_bos"], jinja))
        except ValueError:
            pass
    refused = len(convs) - len(rendered)
    if summary["dropped"]["malformed"] != refused:
        R.fail(f"{summary['dropped']['malformed']} conversations dropped as malformed, the template refuses {refused}")
    got = R.split_docs(words)
    if len(got) != len(rendered):
        R.fail(f"{len(got)} documents in shards, {len(rendered)} conversations the template renders")
    for i, ((text, spans), (toks, trained)) in enumerate(zip(rendered, got)):
        enc = hf.encode(text, add_special_tokens=False)
        if toks != enc.ids:
            k = next(k for k in range(len(toks) + 1) if k >= len(toks) or k >= len(enc.ids) or toks[k] != enc.ids[k])
            R.fail(f"conversation {i}: tokens differ at {k}\n medtune:   {hf.decode(toks[:k + 8], skip_special_tokens=False)!r}"
                   f"\n reference: {text[:400]!r}")
        regions = []
        for s, e in spans:
            if text[e:e + len(closing)] != closing:
                R.fail(f"conversation {i}: answer not followed by {closing!r}: {text[e:e + 20]!r}")
            regions.append((s - (1 if kind == "llama2" else 0), e + len(closing)))
        # A token is trained when it ends inside an answer region (one straddling the start
        # of a region belongs to the answer, one straddling its end to what follows). An added
        # token that strips whitespace around it (Phi-3's <|end|> eats the "\n" after it) ends
        # where its content ends.
        ends = [a + text[a:b].find(added[t]) + len(added[t]) if t in stripping else b
                for t, (a, b) in zip(enc.ids, enc.offsets)]
        want = [1 if any(rs < b <= re_ for rs, re_ in regions) else 0 for b in ends]
        want[0] = 0
        if trained != want:
            bad = [k for k in range(len(want)) if want[k] != trained[k]]
            R.fail(f"conversation {i}: mask differs at tokens {bad[:10]}: "
                   f"{[hf.id_to_token(toks[k]) for k in bad[:10]]}")
        answer_ids = [t for t, f in zip(toks, trained) if f]
        if not answer_ids:
            R.fail(f"conversation {i}: nothing trained")
    for seq_len in (64, 200, 1024):
        ref = R.windows(words, seq_len, True, tok_info["eos_id"])
        c = R.dump_windows(out, "train", seq_len)
        if [list(map(list, w)) for w in c] != [list(map(list, w)) for w in ref]:
            R.fail(f"packed windows of {seq_len} tokens differ from the documented packing")
    print(f"OK: {template} on {tok_name}: {len(rendered)} conversations, tokens and masks match"
          + (f"; {refused} refused by the template and dropped by medtune" if refused else ""))


if __name__ == "__main__":
    main()
