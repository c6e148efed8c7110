namespace Raft.Model;

/// <summary>
/// The one list of what the engine does with each config.json key (README's "Supported config keys" quotes it):
/// <see cref="Honoured"/> keys change the math and are computed as Hugging Face computes them (some only for certain
/// values, the others refused by name); <see cref="Inert"/> keys change nothing the engine computes (ids, bookkeeping,
/// caching switches); <see cref="Refused"/> names keys known to change the math that the engine does not compute. Any key
/// in none of these lists is refused too (<see cref="UnsupportedConfigException"/>, exit code 2 in the CLI).
/// </summary>
public static class ModelConfigKeys
{
    /// <summary>The model_type values computed (raft: the built-in tiny models, computed as llama).</summary>
    public static IReadOnlyList<string> ModelTypes { get; } = ["llama", "mistral", "qwen2", "qwen3", "raft"];

    /// <summary>Keys that change the math, with what the engine does with them.</summary>
    public static IReadOnlyDictionary<string, string> Honoured { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["model_type"] = "llama, mistral, qwen2, qwen3 (q/k RMSNorm per head before RoPE), raft; others refused",
        ["hidden_size"] = "d_model",
        ["intermediate_size"] = "the SwiGLU MLP's width",
        ["num_hidden_layers"] = "layers",
        ["num_attention_heads"] = "query heads",
        ["num_key_value_heads"] = "key/value heads (grouped-query attention); default: the query heads",
        ["head_dim"] = "per-head width, decoupled from hidden_size / heads; Qwen3's default 128",
        ["vocab_size"] = "rows of the embedding and lm_head",
        ["rms_norm_eps"] = "RMSNorm ε",
        ["rope_theta"] = "RoPE base θ",
        ["max_position_embeddings"] = "the ONNX export's RoPE table length; dynamic NTK's and yarn's reference length",
        ["rope_scaling"] = "rope_type (or legacy type) default, linear, dynamic, llama3, yarn with their keys; longrope and others refused; keys a type does not read refused",
        ["rope_parameters"] = "transformers 5's name for rope_scaling (rope_theta may live inside)",
        ["tie_word_embeddings"] = "lm_head is the embedding",
        ["attention_bias"] = "llama, qwen3, raft: bias on q, k, v and o_proj; qwen2: always q/k/v bias (false refused); mistral: none (true refused)",
        ["mlp_bias"] = "llama, raft: bias on gate, up and down_proj; true refused for other families",
        ["hidden_act"] = "silu (alias swish) only; every other activation refused",
        ["sliding_window"] = "mistral: every layer's window (null: none; absent: 4096); qwen2/qwen3: with use_sliding_window; llama: non-null refused",
        ["use_sliding_window"] = "qwen2/qwen3: turns the window on; refused for mistral (not read) and llama (true)",
        ["max_window_layers"] = "qwen2/qwen3: layers ≥ this index use the window (default 28) unless layer_types is given",
        ["layer_types"] = "qwen2/qwen3: per layer full_attention / sliding_attention",
        ["partial_rotary_factor"] = "1 only; other values refused",
        ["attention_dropout"] = "0 only; other values refused",
    };

    /// <summary>Keys that change nothing the engine computes.</summary>
    public static IReadOnlySet<string> Inert { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "architectures", "bos_token_id", "eos_token_id", "pad_token_id", "sep_token_id", "decoder_start_token_id",
        "torch_dtype", "dtype", "transformers_version", "_name_or_path", "use_cache", "initializer_range",
        // Llama's tensor-parallel slicing of the projections: the same sums in another grouping (the current modeling code ignores it)
        "pretraining_tp",
        "output_attentions", "output_hidden_states", "return_dict", "torchscript", "id2label", "label2id", "problem_type",
        "tokenizer_class", "prefix", "task_specific_params", "finetuning_task", "is_llama_config", "unsloth_version",
        "bos_token", "eos_token", "pad_token",
        // which attention kernel transformers runs (eager, sdpa, flash): the same math
        "attn_implementation", "_attn_implementation", "_attn_implementation_autoset",
        // PretrainedConfig's generic attributes that full config dumps carry: generation defaults and bookkeeping
        "max_length", "min_length", "do_sample", "early_stopping", "num_beams", "num_beam_groups", "diversity_penalty",
        "temperature", "top_k", "top_p", "typical_p", "repetition_penalty", "length_penalty", "no_repeat_ngram_size",
        "encoder_no_repeat_ngram_size", "bad_words_ids", "num_return_sequences", "output_scores", "return_dict_in_generate",
        "forced_bos_token_id", "forced_eos_token_id", "remove_invalid_values", "exponential_decay_length_penalty",
        "suppress_tokens", "begin_suppress_tokens", "chunk_size_feed_forward", "tf_legacy_loss", "use_bfloat16",
        "is_decoder", "cross_attention_hidden_size", "tie_encoder_decoder",
    };

    /// <summary>Keys accepted when false or null (true would change the math, or needs code the engine does not run).</summary>
    public static IReadOnlySet<string> InertWhenFalse { get; } = new HashSet<string>(StringComparer.Ordinal)
    {
        "rope_interleaved", "use_mrope", "is_encoder_decoder", "add_cross_attention",
    };

    /// <summary>Keys known to change the math that the engine does not compute, with the reason given when refusing them.</summary>
    public static IReadOnlyDictionary<string, string> Refused { get; } = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["quantization_config"] = "quantized checkpoints are not read.",
        ["auto_map"] = "the checkpoint asks for custom modeling code, which the engine does not run.",
        ["attn_logit_softcapping"] = "attention logit soft-capping is not computed.",
        ["final_logit_softcapping"] = "final logit soft-capping is not computed.",
        ["no_rope_layers"] = "layers without RoPE are not computed.",
        ["embedding_multiplier"] = "embedding multipliers are not computed.",
        ["residual_multiplier"] = "residual multipliers are not computed.",
        ["logits_scaling"] = "logit scaling is not computed.",
        ["attention_multiplier"] = "attention multipliers are not computed.",
        ["rope_interleaved"] = "interleaved RoPE is not computed (Hugging Face's Llama rotates halves).",
        ["use_mrope"] = "multimodal RoPE is not computed.",
        ["original_max_position_embeddings"] = "a top-level original_max_position_embeddings (Phi-3's longrope) is not computed; rope_scaling holds it for llama3 and yarn.",
        ["num_experts"] = "mixture-of-experts layers are not computed.",
        ["pruned_heads"] = "pruned heads are not computed.",
    };
}
