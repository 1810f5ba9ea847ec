// The tokenizer files of a Hugging Face model directory, written from a GGUF's tokenizer
// metadata so that a directory made from a GGUF base (merge) loads in transformers'
// AutoTokenizer and in medtune like any HF model directory:
//   tokenizer.json           the GGUF tokenizer as `tokenizers` reads it (tokenizer_to_json)
//   tokenizer_config.json    PreTrainedTokenizerFast; bos/eos/pad/unk tokens, add_bos_token,
//                            add_eos_token, added_tokens_decoder, model_max_length and the
//                            chat template (tokenizer.chat_template)
//   special_tokens_map.json  bos/eos/pad/unk tokens
// Each file is written atomically.
#ifndef MEDTUNE_EXPORT_HF_TOKENIZER_H
#define MEDTUNE_EXPORT_HF_TOKENIZER_H

// `model_max_length`: the model's context (max_position_embeddings).
int hf_tokenizer_write(const char *gguf_path, const char *out_dir, int model_max_length);

#endif
