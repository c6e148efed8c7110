using System.Text.Json;
using System.Text.Json.Serialization;

namespace Raft.Model;

/// <summary>
/// config.json's <c>rope_scaling</c> (transformers 4.x) or <c>rope_parameters</c> (transformers 5), as written. Which
/// keys each <c>rope_type</c> reads, and what every other key is refused with, is <see cref="RotaryEmbedding.For"/>'s.
/// </summary>
public sealed record RopeScalingConfig
{
    /// <summary>default, linear, dynamic, llama3 or yarn (others are refused by name).</summary>
    [JsonPropertyName("rope_type")] public string? RopeType { get; init; }
    /// <summary>The legacy spelling of <see cref="RopeType"/>.</summary>
    [JsonPropertyName("type")] public string? LegacyType { get; init; }
    /// <summary>The scaling factor (linear, dynamic, llama3, yarn).</summary>
    [JsonPropertyName("factor")] public double? Factor { get; init; }
    /// <summary>The pre-training context (llama3; yarn; dynamic only when equal to max_position_embeddings).</summary>
    [JsonPropertyName("original_max_position_embeddings")] public int? OriginalMaxPositionEmbeddings { get; init; }
    /// <summary>llama3's low-frequency factor.</summary>
    [JsonPropertyName("low_freq_factor")] public double? LowFreqFactor { get; init; }
    /// <summary>llama3's high-frequency factor.</summary>
    [JsonPropertyName("high_freq_factor")] public double? HighFreqFactor { get; init; }
    /// <summary>yarn's β_fast (default 32).</summary>
    [JsonPropertyName("beta_fast")] public double? BetaFast { get; init; }
    /// <summary>yarn's β_slow (default 1).</summary>
    [JsonPropertyName("beta_slow")] public double? BetaSlow { get; init; }
    /// <summary>yarn's factor on cos and sin (default from factor, mscale, mscale_all_dim).</summary>
    [JsonPropertyName("attention_factor")] public double? AttentionFactor { get; init; }
    /// <summary>yarn's mscale.</summary>
    [JsonPropertyName("mscale")] public double? Mscale { get; init; }
    /// <summary>yarn's mscale_all_dim.</summary>
    [JsonPropertyName("mscale_all_dim")] public double? MscaleAllDim { get; init; }
    /// <summary>yarn: round the correction range outwards (default true).</summary>
    [JsonPropertyName("truncate")] public bool? Truncate { get; init; }
    /// <summary>transformers 5 keeps rope_theta here.</summary>
    [JsonPropertyName("rope_theta")] public double? RopeTheta { get; init; }
    /// <summary>transformers 5 may keep partial_rotary_factor here (only 1 is supported).</summary>
    [JsonPropertyName("partial_rotary_factor")] public double? PartialRotaryFactor { get; init; }
    /// <summary>Any other key (refused by name).</summary>
    [JsonExtensionData] public Dictionary<string, JsonElement>? OtherKeys { get; set; }
}

/// <summary>The RoPE variants Hugging Face's modeling_rope_utils computes and the engine honours.</summary>
public enum RopeType
{
    /// <summary>inv_freq_i = θ^(−2i/d).</summary>
    Default,
    /// <summary>inv_freq / factor (position interpolation).</summary>
    Linear,
    /// <summary>Dynamic NTK: θ' = θ·(factor·S/M − (factor − 1))^(d/(d−2)) for a call whose longest position + 1 is S &gt; M.</summary>
    Dynamic,
    /// <summary>Llama 3.1's smooth band between low- and high-frequency wavelengths.</summary>
    Llama3,
    /// <summary>YaRN: a ramp between interpolated and extrapolated frequencies, cos and sin times the attention factor.</summary>
    Yarn,
}

/// <summary>
/// The rotary embedding of a config, resolved: the inverse frequencies (for a call's sequence length, which only
/// <see cref="RopeType.Dynamic"/> reads) and the factor on cos and sin, computed as Hugging Face's modeling_rope_utils
/// (transformers 5) does. Every implementation — <see cref="LlamaModel"/>, <see cref="ReferenceModel"/>, the GPU model, the
/// ONNX exporter — takes its tables from here. Dynamic NTK follows a fresh model's full forward: S = the call's largest
/// position + 1 (over the whole batch), the frequencies recomputed when S &gt; max_position_embeddings.
/// </summary>
public sealed class RotaryEmbedding
{
    private RotaryEmbedding(RopeType type, int headDim, double theta, int maxPositions)
    {
        Type = type;
        HeadDim = headDim;
        Theta = theta;
        MaxPositionEmbeddings = maxPositions;
    }

    /// <summary>The variant.</summary>
    public RopeType Type { get; }
    /// <summary>The rotated width (the whole head: partial_rotary_factor must be 1).</summary>
    public int HeadDim { get; }
    /// <summary>The base θ (rope_parameters.rope_theta when given, else rope_theta).</summary>
    public double Theta { get; }
    /// <summary>config.json's max_position_embeddings.</summary>
    public int MaxPositionEmbeddings { get; }
    /// <summary>The scaling factor (1 for default).</summary>
    public double Factor { get; private init; } = 1;
    /// <summary>llama3 / yarn: the pre-training context.</summary>
    public int OriginalMaxPositionEmbeddings { get; private init; }
    /// <summary>llama3's low_freq_factor.</summary>
    public double LowFreqFactor { get; private init; }
    /// <summary>llama3's high_freq_factor.</summary>
    public double HighFreqFactor { get; private init; }
    /// <summary>yarn's β_fast.</summary>
    public double BetaFast { get; private init; }
    /// <summary>yarn's β_slow.</summary>
    public double BetaSlow { get; private init; }
    /// <summary>yarn's truncate.</summary>
    public bool Truncate { get; private init; }
    /// <summary>The factor on cos and sin (yarn's attention factor; 1 otherwise).</summary>
    public double AttentionScaling { get; private init; } = 1;

    /// <summary>Whether the frequencies depend on the call's sequence length (dynamic NTK).</summary>
    public bool DependsOnLength => Type == RopeType.Dynamic;

    /// <summary>
    /// The length the tables of a call whose largest position is <paramref name="maxPosition"/> are computed for:
    /// max(maxPosition + 1, max_position_embeddings) for dynamic NTK, max_position_embeddings otherwise (where it is unused).
    /// </summary>
    public int TableLength(int maxPosition) =>
        DependsOnLength ? Math.Max(maxPosition + 1, MaxPositionEmbeddings) : MaxPositionEmbeddings;

    /// <summary>The rope of <paramref name="config"/> (which is validated: refusals are <see cref="ModelConfig.Validate"/>'s).</summary>
    public static RotaryEmbedding For(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        return Resolve(config, config.Source);
    }

    internal static RotaryEmbedding Resolve(ModelConfig c, string? source)
    {
        int d = c.HeadDim;
        var rs = c.RopeScaling ?? c.RopeParameters;
        string block = c.RopeScaling is not null ? "rope_scaling" : "rope_parameters";
        if (c.RopeScaling is not null && c.RopeParameters is not null)
            throw new UnsupportedConfigException("rope_parameters", "{…}", source, "rope_scaling and rope_parameters are both given; give one.");
        double theta = rs?.RopeTheta ?? c.RopeTheta;
        if (!(theta > 0) || double.IsInfinity(theta))
            throw new UnsupportedConfigException(rs?.RopeTheta is null ? "rope_theta" : block + ".rope_theta", Num(theta), source, "must be a finite number > 0.");
        if (rs is null) return new RotaryEmbedding(RopeType.Default, d, theta, c.MaxPositionEmbeddings);

        if (rs.RopeType is not null && rs.LegacyType is not null && rs.RopeType != rs.LegacyType)
            throw new UnsupportedConfigException($"{block}.type", Str(rs.LegacyType), source, $"disagrees with {block}.rope_type = {Str(rs.RopeType)}.");
        string typeName = rs.RopeType ?? rs.LegacyType ?? "default";
        string typeKey = rs.RopeType is not null ? $"{block}.rope_type" : $"{block}.type";
        if (rs.PartialRotaryFactor is { } prf && prf != 1.0)
            throw new UnsupportedConfigException($"{block}.partial_rotary_factor", Num(prf), source, "only 1 (the whole head rotated) is supported.");

        RopeType type = typeName switch
        {
            "default" => RopeType.Default,
            "linear" => RopeType.Linear,
            "dynamic" => RopeType.Dynamic,
            "llama3" => RopeType.Llama3,
            "yarn" => RopeType.Yarn,
            _ => throw new UnsupportedConfigException(typeKey, Str(typeName), source,
                "not supported (the engine computes default, linear, dynamic, llama3 and yarn)."),
        };

        if (rs.OtherKeys is { Count: > 0 })
        {
            var (k, v) = rs.OtherKeys.First();
            throw new UnsupportedConfigException($"{block}.{k}", v.GetRawText(), source, "not a key the engine knows changes nothing; refused rather than ignored.");
        }
        // the keys each type reads; any other key given is refused by name (it would change nothing, silently)
        var given = new List<(string Key, string Value)>();
        void Given(string key, object? value)
        {
            if (value is not null) given.Add((key, value is string s ? Str(s) : value is bool b ? (b ? "true" : "false") : Num(Convert.ToDouble(value, System.Globalization.CultureInfo.InvariantCulture))));
        }
        Given("factor", rs.Factor); Given("original_max_position_embeddings", rs.OriginalMaxPositionEmbeddings);
        Given("low_freq_factor", rs.LowFreqFactor); Given("high_freq_factor", rs.HighFreqFactor);
        Given("beta_fast", rs.BetaFast); Given("beta_slow", rs.BetaSlow); Given("attention_factor", rs.AttentionFactor);
        Given("mscale", rs.Mscale); Given("mscale_all_dim", rs.MscaleAllDim); Given("truncate", rs.Truncate);
        string[] reads = type switch
        {
            RopeType.Default => [],
            RopeType.Linear => ["factor"],
            RopeType.Dynamic => ["factor", "original_max_position_embeddings"],
            RopeType.Llama3 => ["factor", "original_max_position_embeddings", "low_freq_factor", "high_freq_factor"],
            _ => ["factor", "original_max_position_embeddings", "beta_fast", "beta_slow", "attention_factor", "mscale", "mscale_all_dim", "truncate"],
        };
        foreach (var (k, v) in given)
            if (!reads.Contains(k))
                throw new UnsupportedConfigException($"{block}.{k}", v, source, $"not read by rope_type {typeName}; refused rather than ignored.");

        double Positive(double? value, string key, double? fallback = null)
        {
            double x = value ?? fallback ?? throw new UnsupportedConfigException($"{block}.{key}", "(absent)", source, $"required by rope_type {typeName}.");
            if (!(x > 0) || double.IsInfinity(x))
                throw new UnsupportedConfigException($"{block}.{key}", Num(x), source, "must be a finite number > 0.");
            return x;
        }
        int max = c.MaxPositionEmbeddings;
        switch (type)
        {
            case RopeType.Default:
                return new RotaryEmbedding(type, d, theta, max);
            case RopeType.Linear:
                return new RotaryEmbedding(type, d, theta, max) { Factor = Positive(rs.Factor, "factor") };
            case RopeType.Dynamic:
                if (rs.OriginalMaxPositionEmbeddings is { } om && om != max)
                    throw new UnsupportedConfigException($"{block}.original_max_position_embeddings", Num(om), source,
                        $"Hugging Face's dynamic NTK ignores it and scales from max_position_embeddings ({max}); a value that differs is ambiguous.");
                if (d <= 2)
                    throw new UnsupportedConfigException(typeKey, Str(typeName), source, $"dynamic NTK needs head_dim > 2, got {d}.");
                return new RotaryEmbedding(type, d, theta, max) { Factor = Positive(rs.Factor, "factor") };
            case RopeType.Llama3:
            {
                double low = Positive(rs.LowFreqFactor, "low_freq_factor"), high = Positive(rs.HighFreqFactor, "high_freq_factor");
                if (!(high > low))
                    throw new UnsupportedConfigException($"{block}.high_freq_factor", Num(high), source, $"must be greater than low_freq_factor ({Num(low)}).");
                int orig = (int)Positive(rs.OriginalMaxPositionEmbeddings, "original_max_position_embeddings");
                return new RotaryEmbedding(type, d, theta, max)
                {
                    Factor = Positive(rs.Factor, "factor"), LowFreqFactor = low, HighFreqFactor = high, OriginalMaxPositionEmbeddings = orig,
                };
            }
            default:
            {
                int orig = rs.OriginalMaxPositionEmbeddings is null ? max : (int)Positive(rs.OriginalMaxPositionEmbeddings, "original_max_position_embeddings");
                // transformers 5: an absent factor is max_position_embeddings / original_max_position_embeddings
                double factor = Positive(rs.Factor, "factor", (double)max / orig);
                double attention = rs.AttentionFactor is { } af
                    ? (af >= 0 && double.IsFinite(af) ? af : throw new UnsupportedConfigException($"{block}.attention_factor", Num(af), source, "must be a finite number ≥ 0."))
                    : rs.Mscale is { } ms && ms != 0 && rs.MscaleAllDim is { } mad && mad != 0
                        ? YarnMscale(factor, ms) / YarnMscale(factor, mad)
                        : YarnMscale(factor, 1);
                double betaFast = rs.BetaFast is { } bf && bf != 0 ? bf : 32, betaSlow = rs.BetaSlow is { } bs && bs != 0 ? bs : 1;
                if (!double.IsFinite(betaFast) || !double.IsFinite(betaSlow) || betaFast <= 0 || betaSlow <= 0)
                    throw new UnsupportedConfigException($"{block}.beta_fast", Num(betaFast), source, "beta_fast and beta_slow must be finite numbers > 0.");
                return new RotaryEmbedding(type, d, theta, max)
                {
                    Factor = factor, OriginalMaxPositionEmbeddings = orig, BetaFast = betaFast, BetaSlow = betaSlow,
                    Truncate = rs.Truncate ?? true, AttentionScaling = attention,
                };
            }
        }
    }

    /// <summary>yarn's get_mscale: 1 for scale ≤ 1, else 0.1·m·ln(scale) + 1.</summary>
    public static double YarnMscale(double scale, double m) => scale <= 1 ? 1.0 : 0.1 * m * Math.Log(scale) + 1.0;

    private static string Num(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
    private static string Str(string s) => JsonSerializer.Serialize(s);

    /// <summary>
    /// The inverse frequencies [head_dim / 2] in double precision (the specification) for tables of length
    /// <paramref name="tableLength"/> (<see cref="TableLength"/>; only dynamic NTK reads it).
    /// </summary>
    public double[] InverseFrequencies(int tableLength)
    {
        int half = HeadDim / 2, d = HeadDim;
        var inv = new double[half];
        double theta = Theta;
        if (Type == RopeType.Dynamic && tableLength > MaxPositionEmbeddings)
            theta = DynamicBase(tableLength);
        for (int i = 0; i < half; i++) inv[i] = Math.Pow(theta, -2.0 * i / d);
        switch (Type)
        {
            case RopeType.Linear:
                for (int i = 0; i < half; i++) inv[i] /= Factor;
                break;
            case RopeType.Llama3:
                for (int i = 0; i < half; i++) inv[i] = Llama3(inv[i]);
                break;
            case RopeType.Yarn:
            {
                var (low, high) = YarnRange();
                for (int i = 0; i < half; i++) inv[i] = YarnBlend(inv[i], i, low, high);
                break;
            }
        }
        return inv;
    }

    /// <summary>
    /// The inverse frequencies in fp32 as transformers forms them (θ^(2i/d) in fp32, then the variant's scaling), for the
    /// fast paths; for the default variant exactly <c>1f / MathF.Pow((float)θ, (float)(2i) / d)</c>.
    /// </summary>
    public float[] InverseFrequenciesF32(int tableLength)
    {
        int half = HeadDim / 2, d = HeadDim;
        var inv = new float[half];
        double theta = Theta;
        if (Type == RopeType.Dynamic && tableLength > MaxPositionEmbeddings)
            theta = DynamicBase(tableLength);
        for (int i = 0; i < half; i++) inv[i] = 1f / MathF.Pow((float)theta, (float)(2 * i) / d);
        switch (Type)
        {
            case RopeType.Linear:
                for (int i = 0; i < half; i++) inv[i] /= (float)Factor;
                break;
            case RopeType.Llama3:
                for (int i = 0; i < half; i++) inv[i] = (float)Llama3(inv[i]);
                break;
            case RopeType.Yarn:
            {
                var (low, high) = YarnRange();
                for (int i = 0; i < half; i++) inv[i] = (float)YarnBlend(inv[i], i, low, high);
                break;
            }
        }
        return inv;
    }

    /// <summary>Dynamic NTK's base for a table of length s &gt; M: θ·(factor·s/M − (factor − 1))^(d/(d−2)).</summary>
    public double DynamicBase(int s) =>
        Theta * Math.Pow(Factor * s / MaxPositionEmbeddings - (Factor - 1), (double)HeadDim / (HeadDim - 2));

    private double Llama3(double inv)
    {
        double lowWavelen = OriginalMaxPositionEmbeddings / LowFreqFactor, highWavelen = OriginalMaxPositionEmbeddings / HighFreqFactor;
        double wavelen = 2 * Math.PI / inv;
        if (wavelen < highWavelen) return inv;                      // high frequencies: kept
        if (wavelen > lowWavelen) return inv / Factor;              // low frequencies: interpolated
        double smooth = (OriginalMaxPositionEmbeddings / wavelen - LowFreqFactor) / (HighFreqFactor - LowFreqFactor);
        return (1 - smooth) * inv / Factor + smooth * inv;          // the band between: a smooth mix
    }

    /// <summary>yarn's correction range [low, high] over the dimension pairs (floor/ceil when truncating, clamped to [0, d−1]).</summary>
    public (double Low, double High) YarnRange()
    {
        double Dim(double rotations) =>
            HeadDim * Math.Log(OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(Theta));
        double low = Dim(BetaFast), high = Dim(BetaSlow);
        if (Truncate) { low = Math.Floor(low); high = Math.Ceiling(high); }
        return (Math.Max(low, 0), Math.Min(high, HeadDim - 1));
    }

    private double YarnBlend(double extrapolation, int i, double low, double high)
    {
        if (low == high) high += 0.001;
        double ramp = Math.Clamp((i - low) / (high - low), 0, 1);   // 0: extrapolate (keep), 1: interpolate (÷ factor)
        double interpolation = extrapolation / Factor;
        return interpolation * ramp + extrapolation * (1 - ramp);
    }
}
