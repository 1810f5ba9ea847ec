"""Round trip: medtune prep -> shards == documents extracted, cleaned and tokenized
independently (xml.etree, unicodedata, Hugging Face tokenizers), split by the documented
hash; and the C reader's windows == windows computed here from the documented layout.

Runs on a tokenizer of TOKENIZER_NAME's family trained on the sample data with the corpus
samples written for the tests (tests/data/pubmed_sample.xml, pmc_sample*.nxml), then, when
$MEDTUNE_SHARED is present, on its staged tokenizer with its real PubMed / PMC files.

usage: check_roundtrip.py pubmed|pmc|jsonl TOKENIZER_NAME"""

import glob
import gzip
import json
import os
import sys
import tempfile
import xml.etree.ElementTree as ET

from tokenizers import Tokenizer

import prep_ref as R

EOS = {"gpt2": "<|endoftext|>", "llama2": "</s>"}


def pubmed_docs(paths):
    docs = []
    for path in paths:
        root = ET.parse(path).getroot()
        for art in root.iter():
            if art.tag not in ("PubmedArticle", "PubmedBookArticle"):
                continue
            title = ""
            inside_abstract = set()
            for ab in list(art.iter("Abstract")) + list(art.iter("OtherAbstract")):
                inside_abstract.update(id(e) for e in ab.iter())
            for t in art.iter("ArticleTitle"):
                if id(t) not in inside_abstract:
                    title = "".join(t.itertext())
            sections = []
            for ab in art.iter("Abstract"):
                for at in ab.iter("AbstractText"):
                    label = at.get("Label") or ""
                    sections.append((label + ": " if label else "") + "".join(at.itertext()))
            abstract = "\n".join(sections)
            if not abstract:
                continue
            docs.append(title + "\n" + abstract if title else abstract)
    return docs


SKIP = {"fig", "table-wrap", "supplementary-material", "ref-list", "disp-formula", "table-wrap-foot"}


def _paras(e, out):
    for c in e:
        if c.tag in SKIP:
            continue
        if c.tag == "p":
            out.append(_p_text(c))
        else:
            _paras(c, out)


def _p_text(e):
    """The text of a paragraph or inline element: skipped elements dropped, a nested <p>
    joined with a space, tails kept."""
    parts = [e.text or ""]
    for c in e:
        if c.tag in SKIP:
            pass
        elif c.tag == "p":
            parts.append(" " + _p_text(c))
        else:
            parts.append(_p_text(c))
        parts.append(c.tail or "")
    return "".join(parts)


def pmc_docs(paths):
    docs = []
    for path in paths:
        root = ET.parse(path).getroot()
        paras = []
        front = root.find("front")
        if front is not None:
            for tg in front.iter("title-group"):
                for t in tg.iter("article-title"):
                    paras.append(_p_text(t))
            for ab in front.iter("abstract"):
                _paras(ab, paras)
        body = root.find("body")
        if body is not None:
            _paras(body, paras)
        paras = [p.lstrip(" \n\t") for p in paras]
        text = "\n\n".join(p for p in paras if p)
        if text:
            docs.append(text)
    return docs


def own_jsonl(tmp):
    """Hand-written records exercising NFC, odd whitespace, CRLF, duplicates and .gz."""
    records = [
        "Cafe\u0301 au lait spots are flat,\u00a0pigmented\tmacules.\r\nThey are usually benign.",
        "  Leading and trailing blanks   \n\n\n\nare collapsed.  ",
        "Zero\u200bwidth space and a BOM\ufeff are dropped; vertical\x0btab is a line break.",
        "Cafe\u0301 au lait spots are flat,\u00a0pigmented\tmacules.\r\nThey are usually benign.",
        "Hypertension raises the risk of stroke, heart failure and chronic kidney disease.",
        "Metformin is a first-line drug for type 2 diabetes; it lowers hepatic glucose output.",
        "\u2028Line separator\u2029paragraph separator and NEL\u0085end.",
        "Ångström-scale resolution (A\u030angstrom written decomposed) is NFC-composed.",
    ]
    for i in range(40):
        records.append(f"Synthetic note {i}: patient {i % 7} reports symptom {i * 3 % 11} for {i + 2} days.")
    plain = os.path.join(tmp, "notes.jsonl")
    with open(plain, "w") as f:
        for r in records[:20]:
            f.write(json.dumps({"body": r, "id": 1}) + "\n")
    with gzip.open(os.path.join(tmp, "notes2.jsonl.gz"), "wt") as f:
        for r in records[20:]:
            f.write(json.dumps({"body": r}) + "\n")
    return records, [{"path": os.path.join(tmp, "notes*.jsonl*"), "format": "jsonl", "text_field": "body"}]


def main():
    kind, tok_name = sys.argv[1], sys.argv[2]
    tmp = tempfile.mkdtemp(prefix="medtune_prep_rt_")
    shared = R.env("MEDTUNE_SHARED")
    for i, (label, tok_path, json_path) in enumerate(R.tokenizers_for(tok_name, tmp)):
        work = os.path.join(tmp, str(i))
        os.makedirs(work)
        # The sample files written for the tests (tests/data/) always; with the staged
        # tokenizer also the real corpus files of $MEDTUNE_SHARED/data.
        if kind == "pubmed":
            paths = [R.sample_data("pubmed_sample.xml")]
            if i:
                paths = sorted(glob.glob(os.path.join(shared, "data", "pubmed_xml", "*.xml")))
                if not paths:
                    R.fail(f"no PubMed XML in {shared}/data/pubmed_xml")
        elif kind == "pmc":
            paths = R.sample_data("pmc_sample*.nxml")  # a glob, as a config may give it
            if i:
                paths = os.path.join(shared, "data", "pmc_oa_nxml", "*.nxml")
            if not glob.glob(paths):
                R.fail(f"no PMC nxml matches {paths}")
        else:
            paths = None
        roundtrip(kind, tok_name, label, tok_path, json_path, paths, work)


def roundtrip(kind, tok_name, label, tok_path, json_path, paths, tmp):
    hf = Tokenizer.from_file(json_path)
    if kind == "pubmed":
        raw = pubmed_docs(paths)
        # One input as .gz too, to cover transparent decompression of XML.
        gz = os.path.join(tmp, "sample.xml.gz")
        with open(paths[0], "rb") as f, gzip.open(gz, "wb") as g:
            g.write(f.read())
        raw += pubmed_docs([paths[0]])
        inputs = [{"path": p, "format": "pubmed-xml"} for p in paths] + [{"path": gz, "format": "pubmed-xml"}]
    elif kind == "pmc":
        raw = pmc_docs(sorted(glob.glob(paths)))
        inputs = [{"path": paths, "format": "pmc-nxml"}]
    else:
        raw, inputs = own_jsonl(tmp)
    val_fraction = 0.25
    out = os.path.join(tmp, "shards")
    cfg = {"tokenizer": tok_path, "inputs": inputs, "val_fraction": val_fraction, "out_dir": out,
           "shard_tokens": 4096}
    summary = json.loads(R.prep(tmp, cfg).stdout)

    eos = hf.token_to_id(EOS[tok_name])
    expect = {"train": [], "val": []}
    seen = set()
    for text in raw:
        c = R.clean(text)
        if not c or c in seen:
            continue
        seen.add(c)
        ids = hf.encode(c, add_special_tokens=True).ids
        if ids[-1] != eos:
            ids.append(eos)
        expect["val" if R.is_val(c.encode(), val_fraction) else "train"].append(ids)
    n_dups = len(raw) - len(seen) - sum(1 for t in raw if not R.clean(t))
    if summary["dropped"]["duplicate"] != n_dups:
        R.fail(f"duplicates: medtune {summary['dropped']['duplicate']}, reference {n_dups}")
    for split in ("train", "val"):
        m, words = R.read_split(out, split)
        if m["tokenizer"]["eos_id"] != eos:
            R.fail(f"manifest eos_id {m['tokenizer']['eos_id']} != {eos}")
        got = R.split_docs(words)
        want = expect[split]
        if len(got) != len(want):
            R.fail(f"{split}: {len(got)} documents in shards, reference has {len(want)}")
        for i, ((toks, trained), ids) in enumerate(zip(got, want)):
            if toks != ids:
                k = next(k for k in range(min(len(toks), len(ids)) + 1)
                         if k >= len(toks) or k >= len(ids) or toks[k] != ids[k])
                R.fail(f"{split} doc {i}: tokens differ at {k}: medtune {toks[max(0, k - 3):k + 4]} "
                       f"reference {ids[max(0, k - 3):k + 4]}\n  medtune text: {hf.decode(toks)[:300]!r}")
            if trained != [0] + [1] * (len(ids) - 1):
                R.fail(f"{split} doc {i}: text documents must train every token but the first")
        if summary[split]["tokens"] != len(words):
            R.fail(f"{split}: summary says {summary[split]['tokens']} tokens, shards hold {len(words)}")
        for seq_len in (7, 64, 1000):
            ref = R.windows(words, seq_len, False, eos)
            c = R.dump_windows(out, split, seq_len, scrambled=seq_len == 64)
            if len(c) != len(ref):
                R.fail(f"{split} T={seq_len}: reader has {len(c)} windows, reference {len(ref)}")
            for i, (a, b) in enumerate(zip(c, ref)):
                if list(map(list, a)) != list(map(list, b)):
                    R.fail(f"{split} T={seq_len} window {i} differs")
    print(f"OK: {kind} with {label}: {sum(map(len, expect.values()))} documents, "
          f"{summary['train']['tokens']} + {summary['val']['tokens']} tokens match")


if __name__ == "__main__":
    main()
