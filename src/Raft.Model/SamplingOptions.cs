namespace Raft.Model;

/// <summary>
/// How the generator picks tokens. Applied in Hugging Face's order: temperature, then top-k, then top-p. Every field
/// is checked when it is set (construction or <c>with</c>), so an invalid value raises an
/// <see cref="ArgumentException"/> naming the field and the value and an instance is always valid.
/// </summary>
public sealed record SamplingOptions
{
    private readonly float _temperature = 1f;
    private readonly int _topK;
    private readonly float _topP = 1f;
    private readonly int _maxNewTokens = 256;
    private readonly IReadOnlyList<int> _stop = [];
    private readonly int _vocabLimit;

    /// <summary>Greedy decoding (argmax) with otherwise default settings.</summary>
    public static SamplingOptions Greedy { get; } = new() { Temperature = 0f };

    /// <summary>Logits are divided by this before softmax; 0 means greedy (argmax). Finite, ≥ 0.</summary>
    public float Temperature
    {
        get => _temperature;
        init
        {
            if (!(value >= 0f) || !float.IsFinite(value))
                throw new ArgumentException($"Temperature must be finite and ≥ 0 (0: greedy), got {value}.", nameof(Temperature));
            _temperature = value;
        }
    }

    /// <summary>Keep only the K most likely tokens (ties broken toward the lower id); 0 turns it off. ≥ 0.</summary>
    public int TopK
    {
        get => _topK;
        init
        {
            if (value < 0) throw new ArgumentException($"TopK must be ≥ 0 (0: off), got {value}.", nameof(TopK));
            _topK = value;
        }
    }

    /// <summary>Keep the smallest set of most likely tokens whose probability reaches P (the nucleus); 1 turns it off. In (0, 1].</summary>
    public float TopP
    {
        get => _topP;
        init
        {
            if (!(value > 0f && value <= 1f)) throw new ArgumentException($"TopP must be in (0, 1] (1: off), got {value}.", nameof(TopP));
            _topP = value;
        }
    }

    /// <summary>The most tokens to generate per sequence. ≥ 1.</summary>
    public int MaxNewTokens
    {
        get => _maxNewTokens;
        init
        {
            if (value < 1) throw new ArgumentException($"MaxNewTokens must be ≥ 1, got {value}.", nameof(MaxNewTokens));
            _maxNewTokens = value;
        }
    }

    /// <summary>Token ids that end a sequence (the stop token is kept in the output). Each ≥ 0.</summary>
    public IReadOnlyList<int> StopTokenIds
    {
        get => _stop;
        init
        {
            ArgumentNullException.ThrowIfNull(value, nameof(StopTokenIds));
            for (int i = 0; i < value.Count; i++)
                if (value[i] < 0) throw new ArgumentException($"StopTokenIds[{i}] must be ≥ 0, got {value[i]}.", nameof(StopTokenIds));
            _stop = value.ToArray();
        }
    }

    /// <summary>
    /// Only ids below this are ever picked: the tokenizer's size when the model's embedding has padding rows beyond it
    /// (Qwen2.5/Qwen3: 151,936 rows for 151,669 tokens). The ids at and above it get −∞ before sampling and the greedy
    /// choice, which is picking over the row's first <see cref="VocabLimit"/> logits. 0 (the default): the whole row. ≥ 0.
    /// </summary>
    public int VocabLimit
    {
        get => _vocabLimit;
        init
        {
            if (value < 0) throw new ArgumentException($"VocabLimit must be ≥ 0 (0: the whole vocabulary), got {value}.", nameof(VocabLimit));
            _vocabLimit = value;
        }
    }

    /// <summary>The ids a row of <paramref name="vocabSize"/> logits may produce: <see cref="VocabLimit"/>, or the whole row when it is 0.</summary>
    public int PickableIds(int vocabSize) => _vocabLimit == 0 ? vocabSize : Math.Min(_vocabLimit, vocabSize);

    /// <summary>The seed of the counter-based random source (<see cref="Philox"/>).</summary>
    public ulong Seed { get; init; }

    /// <summary>Whether this picks the argmax (temperature 0 or top-k 1).</summary>
    public bool IsGreedy => Temperature == 0f || TopK == 1;

    /// <summary>Checks <paramref name="vocabSize"/>-dependent limits (stop ids inside the vocabulary); throws naming the field and value.</summary>
    public void ValidateFor(int vocabSize)
    {
        if (VocabLimit > vocabSize)
            throw new ArgumentException($"VocabLimit must be ≤ the vocabulary size {vocabSize}, got {VocabLimit}.", nameof(VocabLimit));
        int pickable = PickableIds(vocabSize);
        for (int i = 0; i < StopTokenIds.Count; i++)
            if (StopTokenIds[i] >= pickable)
                throw new ArgumentException(pickable == vocabSize
                    ? $"StopTokenIds[{i}] must be < the vocabulary size {vocabSize}, got {StopTokenIds[i]}."
                    : $"StopTokenIds[{i}] must be < VocabLimit {pickable}, got {StopTokenIds[i]}.", nameof(StopTokenIds));
    }
}
